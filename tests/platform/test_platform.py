"""PlatformManager over a real SQLite store: pause/resume, cancel, recovery, inspection."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from kneo import Decision
from kneo.errors import (
    Conflict,
    InvalidDecision,
    KneoError,
    NotFound,
    RequestAlreadyResolved,
    ResourceLocked,
    SpecError,
)
from kneo.kernel.code import collect_code, load_code
from kneo.platform import PlatformManager, create_platform
from kneo.settings import Settings
from kneo.spec.project import ProjectContext
from kneo.store import AuditQuery

STEPS = """

from pathlib import Path

HERE = Path(__file__).parent

def _count(name):
    with open(HERE / "counter.txt", "a") as fh:
        fh.write(name + "\\n")

def first(text):
    _count("first")
    return text + " first"

def second(text):
    _count("second")
    return text + " second"

def crashy(text):
    _count("crashy")
    if (HERE / "crash").exists():
        (HERE / "crash").unlink()
        raise SystemExit("simulated crash")
    return text + " crashy"

def flaky(text):
    _count("flaky")
    marker = HERE / "flaky_left"
    left = int(marker.read_text()) if marker.exists() else 0
    if left:
        marker.write_text(str(left - 1))
        raise RuntimeError("transient")
    return text + " flaky"

CANCEL = {}

GATE = {}

def gated(text):
    _count("gated")
    GATE["entered"].set()
    assert GATE["release"].wait(30)
    return text + " gated"

def cancel_me(text):
    _count("cancel_me")
    CANCEL["manager"].cancel(CANCEL["run_id"]())
    return text + " should-not-commit"
"""

HUMANS = {"humans": {"reviewer": {"prompt": "Approve?", "assignee": "ann", "timeout_seconds": 60}}}


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "pfsteps.py").write_text(STEPS)
    (tmp_path / ".kneo").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("pfsteps", None)
    from kneo.engine import functions

    functions._cache.clear()
    return tmp_path


@pytest.fixture()
def manager(project: Path) -> Any:
    settings = Settings.from_env({})
    ctx = ProjectContext.discover(cwd=project, settings=settings)
    platform = create_platform(settings, ctx)
    yield platform
    platform.store.close()


def write_spec(project: Path, name: str, workflow: dict[str, Any], **extra: Any) -> str:
    path = project / f"{name}.yaml"
    path.write_text(json.dumps({"version": "v1", "workflow": workflow, **extra}))
    return str(path)


def fn(step_id: str, func: str, **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "kind": "function", "ref": f"pfsteps:{func}", **extra}


def run_module(project: Path) -> Any:
    """``pfsteps`` as this project's runs load it: from its file, under the project's code
    namespace (the same file and root: the same module object, and its state)."""
    root = project.resolve()
    code, _ = collect_code(["pfsteps"], [root], project_root=root)
    return load_code(code, origin=root).module("pfsteps")


def counter(project: Path) -> list[str]:
    path = project / "counter.txt"
    return path.read_text().split() if path.exists() else []


def approval_spec(project: Path) -> str:
    return write_spec(
        project,
        "approval",
        {
            "steps": [
                fn("a", "first"),
                {"id": "review", "kind": "human", "ref": "reviewer"},
                fn("b", "second"),
            ]
        },
        components=HUMANS,
    )


def test_pause_and_resume_never_repeat_completed_steps(
    manager: PlatformManager, project: Path
) -> None:
    paused = manager.run_from_spec(input_text="go", spec_path=approval_spec(project))
    assert paused.status == "paused" and paused.human_intervention_required
    assert paused.continuation_id.startswith("cont_") and paused.request_id.startswith("req_")
    assert paused.metadata["pending_human_request"]["prompt"] == "Approve?"
    task = manager.list_human_tasks()["tasks"][0]
    assert (
        task["continuation_id"] == paused.continuation_id and task["request"]["assignee"] == "ann"
    )
    assert counter(project) == ["first"]
    done = manager.resume(
        paused.continuation_id,
        Decision(paused.request_id, "edited", content="better draft"),
        actor="ann",
    )
    assert done.status == "succeeded" and done.output_text == "better draft second"
    assert counter(project) == ["first", "second"]
    audit = {
        a.event_type: a.payload
        for a in manager.store.audit.list_audit(AuditQuery(run_id=paused.run_id)).items
    }
    assert audit["human.decision"] == {
        "request_id": paused.request_id,
        "decision": "edited",
        "selected_option": None,
        "result_status": "succeeded",
        "content_present": True,
        "assignee": "ann",  # the request's, and the run's environment: notification filters
        "environment": "dev",
    }
    assert "better draft" not in json.dumps(audit)
    assert {"run.created", "human.requested", "human.decision"} <= set(audit)
    with pytest.raises(RequestAlreadyResolved):
        manager.resume(paused.continuation_id, Decision(paused.request_id, "approved"))


def test_a_resume_writes_the_decision_and_the_outcome(
    manager: PlatformManager, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two write transactions: the decision (the continuation and run read in it), then the
    outcome, which also holds the human step's completion and the last step's boundary."""
    from kneo.store import Store, Transaction

    paused = manager.run_from_spec(input_text="go", spec_path=approval_spec(project))
    writes: list[str] = []
    transaction, write_step = Store.transaction, Transaction.write_step

    def counted(self: Store, held: Any = None) -> Any:
        writes.append("transaction")
        return transaction(self, held)

    def step_counted(self: Transaction, run_id: str, **kwargs: Any) -> Any:
        writes.append("step")
        return write_step(self, run_id, **kwargs)

    monkeypatch.setattr(Store, "transaction", counted)
    monkeypatch.setattr(Transaction, "write_step", step_counted)
    done = manager.resume(paused.continuation_id, Decision(paused.request_id, "approved"))
    assert done.status == "succeeded" and writes == ["transaction", "transaction"]
    checkpoints = manager.store.runs.list_checkpoints(paused.run_id, limit=10).items
    assert [(c.sequence, c.step_id, c.status) for c in checkpoints] == [
        (1, "a", "completed"),
        (2, "review", "paused"),
        (3, "review", "completed"),
        (4, "b", "completed"),
        (5, None, "succeeded"),
    ]


def test_a_run_start_and_a_resume_each_take_one_pooled_connection(
    project: Path, pg_database: Any
) -> None:
    """PostgreSQL: a run's creation and its steps share one checkout from the pool, as do a
    decision and the run's steps after it (the policy read at admission takes its own), and
    none stays checked out after the call."""

    settings = Settings.from_env({"KNEO_SERV_DATABASE_URL": pg_database()})
    platform = create_platform(settings, ProjectContext.discover(cwd=project, settings=settings))
    engine = platform.store.engine
    checkouts: list[int] = []
    try:
        platform.run_from_spec(input_text="go", spec_path=approval_spec(project))  # warm
        sa.event.listen(engine, "checkout", lambda *_: checkouts.append(1))
        paused = platform.run_from_spec(input_text="go", spec_path=approval_spec(project))
        assert paused.status == "paused" and len(checkouts) == 2  # policy read, then the run
        done = platform.resume(paused.continuation_id, Decision(paused.request_id, "approved"))
        assert done.status == "succeeded" and len(checkouts) == 3
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        platform.store.close()


def test_a_crash_after_a_decision_goes_on_from_the_decision(
    manager: PlatformManager, project: Path
) -> None:
    """The human step's completion is written with the next boundary: a crash in the step
    after it loses that boundary, and continuing completes the human step again from its
    recorded decision (no new request) before the crashed step runs again."""
    steps = [
        fn("a", "first"),
        {"id": "review", "kind": "human", "ref": "reviewer"},
        fn("c", "crashy"),
        fn("b", "second"),
    ]
    spec = write_spec(project, "crash_after_decision", {"steps": steps}, components=HUMANS)
    paused = manager.run_from_spec(input_text="go", spec_path=spec)
    (project / "crash").write_text("1")
    with pytest.raises(SystemExit):
        manager.resume(paused.continuation_id, Decision(paused.request_id, "approved"))
    assert manager.get_run(paused.run_id)["status"] == "running"
    ctx = manager.recovery(paused.run_id)
    assert ctx["completed_steps"] == ["a"] and ctx["can_continue"]
    assert ctx["next_units"] == [  # decided: completes from the decision, asks nobody
        {
            "unit_key": "review",
            "step_id": "review",
            "kind": "human",
            "step_index": 1,
            "decided": True,
        }
    ]
    done = manager.continue_run(paused.run_id)
    assert done.status == "succeeded" and done.output_text == "go first crashy second"
    assert counter(project) == ["first", "crashy", "crashy", "second"]
    assert manager.list_human_tasks()["tasks"] == []
    events = [e.event_type for e in manager.store.runs.list_trace(paused.run_id, limit=100).items]
    assert events.count("human_decision") == 1 and events.count("run_paused") == 1
    steps_done = [
        c.step_id for c in manager.store.runs.list_checkpoints(paused.run_id, limit=20).items
    ]
    assert steps_done == ["a", "review", "review", "c", "b", None]


def test_invalid_decisions_change_nothing(manager: PlatformManager, project: Path) -> None:
    paused = manager.run_from_spec(input_text="go", spec_path=approval_spec(project))
    before = manager.store.runs.get_run(paused.run_id)
    cases = [
        dict(decision="selected", selected_option="x"),
        dict(decision="provided", content="x"),
        dict(decision="edited"),
        dict(decision="maybe"),
    ]
    for case in cases:
        with pytest.raises(InvalidDecision):
            manager.resume(paused.continuation_id, Decision(paused.request_id, **case))
    with pytest.raises(NotFound):
        manager.resume(paused.continuation_id, Decision("req_unknown", "approved"))
    with pytest.raises(NotFound):
        manager.resume("cont_unknown", Decision(paused.request_id, "approved"))
    after = manager.store.runs.get_run(paused.run_id)
    assert (after.version, after.status) == (before.version, "paused")
    assert manager.get_human_task(paused.continuation_id)["status"] == "pending"


def test_a_resume_racing_one_that_executes_is_refused_then_resolved(
    manager: PlatformManager, project: Path
) -> None:
    """While one resume executes the run, another gets ``resource_locked``; once it ended,
    ``request_already_resolved``. The step after the decision runs once."""
    import threading

    pfsteps = run_module(project)
    pfsteps.GATE.update(entered=threading.Event(), release=threading.Event())
    spec = write_spec(
        project,
        "gated",
        {
            "steps": [
                fn("a", "first"),
                {"id": "review", "kind": "human", "ref": "reviewer"},
                fn("b", "gated"),
            ]
        },
        components=HUMANS,
    )
    paused = manager.run_from_spec(input_text="go", spec_path=spec)
    results: list[Any] = []
    first = threading.Thread(
        target=lambda: results.append(
            manager.resume(paused.continuation_id, Decision(paused.request_id, "approved"))
        )
    )
    first.start()
    try:
        assert pfsteps.GATE["entered"].wait(30)
        with pytest.raises(ResourceLocked):
            manager.resume(paused.continuation_id, Decision(paused.request_id, "approved"))
    finally:
        pfsteps.GATE["release"].set()
        first.join(30)
    assert [r.status for r in results] == ["succeeded"]
    with pytest.raises(RequestAlreadyResolved):
        manager.resume(paused.continuation_id, Decision(paused.request_id, "approved"))
    assert counter(project) == ["first", "gated"]
    decisions = manager.store.audit.list_audit(
        AuditQuery(run_id=paused.run_id, event_type="human.decision")
    )
    assert decisions.total == 1


def test_a_decision_on_a_finished_run_is_already_resolved_and_writes_nothing(
    manager: PlatformManager, project: Path
) -> None:
    paused = manager.run_from_spec(input_text="go", spec_path=approval_spec(project))
    decision = Decision(paused.request_id, "approved")
    assert manager.resume(paused.continuation_id, decision).status == "succeeded"
    before = manager.store.runs.get_run(paused.run_id).version
    with pytest.raises(RequestAlreadyResolved):
        manager.decisions.resume_decision(
            paused.continuation_id, decision, actor="late", metadata=None
        )
    assert manager.store.runs.get_run(paused.run_id).version == before
    decisions = manager.store.audit.list_audit(
        AuditQuery(run_id=paused.run_id, event_type="human.decision")
    )
    assert decisions.total == 1


def test_rejection_fails_the_run(manager: PlatformManager, project: Path) -> None:
    paused = manager.run_from_spec(input_text="go", spec_path=approval_spec(project))
    failed = manager.resume(
        paused.continuation_id, Decision(paused.request_id, "rejected", content="no")
    )
    assert failed.status == "failed" and failed.metadata["error"]["code"] == "human_rejected"
    assert counter(project) == ["first"]


def test_concurrent_branches_pause_with_several_requests(
    manager: PlatformManager, project: Path
) -> None:
    humans = {"humans": {"r1": {"prompt": "one?"}, "r2": {"prompt": "two?"}}}
    spec = write_spec(
        project,
        "fan",
        {
            "type": "concurrent",
            "participants": [
                fn("a", "first"),
                {"id": "h1", "kind": "human", "ref": "r1"},
                {"id": "h2", "kind": "human", "ref": "r2"},
            ],
        },
        components=humans,
    )
    paused = manager.run_from_spec(input_text="go", spec_path=spec)
    pending = paused.metadata["pending_human_requests"]
    assert paused.status == "paused" and [r["prompt"] for r in pending] == ["one?", "two?"]
    half = manager.resume(paused.continuation_id, Decision(pending[1]["request_id"], "approved"))
    assert half.status == "paused" and half.request_id == pending[0]["request_id"]
    done = manager.resume(paused.continuation_id, Decision(pending[0]["request_id"], "approved"))
    assert done.status == "succeeded" and counter(project) == ["first"]


def test_retries_never_rerun_completed_steps(manager: PlatformManager, project: Path) -> None:
    (project / "flaky_left").write_text("2")
    spec = write_spec(
        project,
        "retry",
        {
            "steps": [
                fn("a", "first"),
                fn("f", "flaky", on_error="retry", max_retries=2),
                fn("b", "second"),
            ]
        },
    )
    result = manager.run_from_spec(input_text="go", spec_path=spec)
    assert result.status == "succeeded"
    assert counter(project) == ["first", "flaky", "flaky", "flaky", "second"]
    types = [c["type"] for c in manager.checkpoints(result.run_id)["checkpoints"]]
    assert types.count("step_retry") == 2


@pytest.mark.parametrize("family", ["sequential", "graph"])
def test_crashed_run_continues_from_its_last_step_boundary(
    manager: PlatformManager, project: Path, family: str
) -> None:
    steps = [fn("a", "first"), fn("c", "crashy"), fn("b", "second")]
    workflow: dict[str, Any] = {"steps": steps}
    if family == "graph":
        workflow = {
            "type": "graph",
            "start": "a",
            "nodes": steps,
            "edges": [{"from": "a", "to": "c"}, {"from": "c", "to": "b"}],
        }
    spec = write_spec(project, f"crash_{family}", workflow)
    (project / "crash").write_text("1")
    with pytest.raises(SystemExit):
        manager.run_from_spec(input_text="go", spec_path=spec)
    run_id = manager.list_runs()["runs"][0]["run_id"]
    assert manager.get_run(run_id)["status"] == "running"
    ctx = manager.recovery(run_id)
    assert ctx["completed_steps"] == ["a"] and ctx["next_step"] == "c" and ctx["can_continue"]
    assert ctx["next_step_index"] == 1
    done = manager.continue_run(run_id)
    assert done.status == "succeeded" and done.output_text == "go first crashy second"
    assert counter(project) == ["first", "crashy", "crashy", "second"]
    audit = [a.event_type for a in manager.store.audit.list_audit(AuditQuery(run_id=run_id)).items]
    assert "run.continued" in audit
    assert manager.recovery(run_id)["can_continue"] is False


def test_cancel_mid_run_is_never_overwritten_as_completed(
    manager: PlatformManager, project: Path
) -> None:
    pfsteps = run_module(project)
    pfsteps.CANCEL.update(manager=manager, run_id=lambda: manager.list_runs()["runs"][0]["run_id"])
    spec = write_spec(
        project, "cancel", {"steps": [fn("a", "first"), fn("x", "cancel_me"), fn("b", "second")]}
    )
    result = manager.run_from_spec(input_text="go", spec_path=spec)
    assert result.status == "cancelled" and result.output_text is None
    assert counter(project) == ["first", "cancel_me"]
    run = manager.get_run(result.run_id)
    assert run["visited_steps"] == ["a"] and run["cancel_requested"]
    with pytest.raises(KneoError) as info:
        manager.cancel(result.run_id)
    assert info.value.code == "illegal_transition"


def test_cancel_paused_run_removes_its_task(manager: PlatformManager, project: Path) -> None:
    paused = manager.run_from_spec(input_text="go", spec_path=approval_spec(project))
    assert manager.cancel(paused.run_id).status == "cancelled"
    assert manager.list_human_tasks()["total"] == 0
    with pytest.raises(NotFound):
        manager.resume(paused.continuation_id, Decision(paused.request_id, "approved"))


def test_inspection_views(manager: PlatformManager, project: Path) -> None:
    paused = manager.run_from_spec(input_text="go", spec_path=approval_spec(project))
    manager.resume(paused.continuation_id, Decision(paused.request_id, "approved"))
    trace = [e["event_type"] for e in manager.trace(paused.run_id)["events"]]
    assert trace[:3] == ["run_created", "run_started", "step_started"]
    assert {"run_paused", "human_decision", "run_resumed", "run_completed"} <= set(trace)
    replay = manager.replay(paused.run_id)
    assert [t["type"] for t in replay["timeline"]] == [
        "step_completed",
        "paused",
        "step_completed",
        "step_completed",
        "run_completed",
    ]
    assert replay["timeline"][1]["pending_human_request_id"] == paused.request_id
    diff = manager.checkpoint_diff(paused.run_id, from_sequence=1, to_sequence=3)
    added = {c["path"]: c["value"] for c in diff["added"]}
    assert added["payload.units.review.decision"] == "approved"
    assert diff["change_count"] == len(diff["added"]) + len(diff["removed"]) + len(diff["changed"])
    latest = manager.checkpoint_diff(paused.run_id)
    assert (latest["from_sequence"], latest["to_sequence"]) == (4, 5)
    with pytest.raises(NotFound, match="#99"):
        manager.checkpoint_diff(paused.run_id, from_sequence=1, to_sequence=99)
    view = manager.get_run(paused.run_id)
    assert view["visited_steps"] == ["a", "review", "b"] and view["status"] == "succeeded"


def test_checkpoints_and_traces_are_redacted(manager: PlatformManager, project: Path) -> None:
    spec = write_spec(project, "secret", {"steps": [fn("a", "first")]})
    result = manager.run_from_spec(
        input_text="mail me at someone@example.com token=abcd1234", spec_path=spec
    )
    payloads = json.dumps(manager.checkpoints(result.run_id, include_payload=True))
    assert "someone@example.com" not in payloads and "abcd1234" not in payloads
    assert result.to_dict()["output_text"].count("[REDACTED_EMAIL]") == 1


def test_bad_specs_create_no_run(manager: PlatformManager, project: Path) -> None:
    bad = write_spec(project, "bad", {"steps": [{"id": "a", "kind": "function", "ref": "nope"}]})
    with pytest.raises(SpecError):
        manager.run_from_spec(input_text="go", spec_path=bad)
    missing = write_spec(project, "missing", {"steps": [fn("a", "not_there")]})
    with pytest.raises(KneoError):
        manager.run_from_spec(input_text="go", spec_path=missing)
    assert manager.list_runs()["total"] == 0
    with pytest.raises(NotFound):
        manager.get_run("run_nope")


def test_start_then_execute_with_deadline(manager: PlatformManager, project: Path) -> None:
    spec = write_spec(project, "queued", {"steps": [fn("a", "first")]})
    queued = manager.start_run_from_spec(input_text="go", spec_path=spec, timeout_seconds=30)
    assert queued.status == "queued" and counter(project) == []
    assert manager.get_run(queued.run_id)["deadline_at"] is not None
    assert manager.execute_run(queued.run_id).status == "succeeded"
    with pytest.raises(KneoError):
        manager.execute_run(queued.run_id)


def test_execute_a_record_read_before_is_still_compare_and_set(
    manager: PlatformManager, project: Path
) -> None:
    """A worker hands over the record it read: the start checks that record's version, so a
    run changed since (here: its cancel requested) is not executed from the stale copy."""
    spec = write_spec(project, "queued", {"steps": [fn("a", "first")]})
    queued = manager.start_run_from_spec(input_text="go", spec_path=spec)
    read = manager.store.runs.get_run(queued.run_id)
    assert manager.execute_run(queued.run_id, run=read).status == "succeeded"
    again = manager.start_run_from_spec(input_text="go", spec_path=spec)
    stale = manager.store.runs.get_run(again.run_id)
    with manager.store.transaction() as tx:
        tx.update_run(again.run_id, expected_version=stale.version, cancel_requested=True)
    with pytest.raises(Conflict) as caught:
        manager.execute_run(again.run_id, run=stale)
    assert caught.value.code == "stale_state"
    assert manager.store.runs.get_run(again.run_id).status == "queued" and counter(project) == [
        "first"
    ]


def test_separate_stores_are_refused(project: Path) -> None:
    from kneo.errors import ConfigError
    from kneo.runtimes import create_runtime_registry
    from kneo.spec.compiler import SpecCompiler
    from kneo.store import open_store
    from kneo.tools.defaults import create_tool_registry

    a = open_store(None, state_dir=project / "a")
    b = open_store(None, state_dir=project / "b")
    compiler = SpecCompiler(
        runtime_registry=create_runtime_registry(), tool_registry=create_tool_registry()
    )
    with pytest.raises(ConfigError):
        PlatformManager(compiler=compiler, run_state_store=a, continuation_store=b)
    a.close()
    b.close()


def test_the_keyword_resume_of_before_0_2_warns_and_still_works(
    manager: PlatformManager, project: Path
) -> None:
    """docs/compatibility.md: a changed public call keeps its old form, with a warning
    pointing at the caller's line, for at least one minor release."""
    paused = manager.run_from_spec(input_text="go", spec_path=approval_spec(project))
    with pytest.warns(DeprecationWarning, match=r"kneo\.Decision") as caught:
        done = manager.resume(  # type: ignore[call-arg]
            paused.continuation_id,
            request_id=paused.request_id,
            decision="edited",
            content="older caller",
        )
    assert caught[0].filename == __file__  # the warning names the caller, not Kneo
    assert done.status == "succeeded" and done.output_text == "older caller second"
    again = manager.run_from_spec(input_text="go", spec_path=approval_spec(project))
    with pytest.raises(KneoError) as mixed:  # both forms at once: refused, naming the field
        manager.resume(again.continuation_id, Decision(again.request_id, "approved"), content="x")
    assert mixed.value.details["field"] == "content"
    with pytest.warns(DeprecationWarning), pytest.raises(KneoError) as missing:
        manager.resume(again.continuation_id, decision="approved")  # type: ignore[call-arg]
    assert missing.value.details["field"] == "request_id"
