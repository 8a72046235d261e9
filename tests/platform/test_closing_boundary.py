"""A closing boundary (the last step of a sequential workflow) is written in the outcome's
transaction: the stored history is the same as when it had its own transaction, a cancel that
lands in between leaves neither written, and an engine that goes on after all flushes it. A
replayable boundary (a human step completed from its recorded decision) is written with the
next boundary or the outcome; so is a boundary before a person (the next unit is a human step),
so a step and the approval after it pause in one transaction."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kneo import Decision
from kneo.engine.journal import Boundary, TraceEvent
from kneo.errors import Conflict
from kneo.platform import PlatformManager, create_platform
from kneo.platform.journal import StoreJournal
from kneo.settings import Settings
from kneo.spec.project import ProjectContext
from kneo.store import Store
from kneo.store.transaction import Transaction

STEPS = """
def one(text):
    return text + " one"

def draft(text):
    return "DRAFT: " + text

def two(text):
    return text + " two"

def three(text):
    return text + " three"
"""


@pytest.fixture()
def manager(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PlatformManager]:
    (tmp_path / "closingsteps.py").write_text(STEPS)
    steps = [
        {"id": name, "kind": "function", "ref": f"closingsteps:{name}"}
        for name in ("one", "two", "three")
    ]
    spec = {"version": "v1", "workflow": {"type": "sequential", "steps": steps}}
    (tmp_path / "three.yaml").write_text(json.dumps(spec))
    edges = [{"from": "one", "to": "two"}, {"from": "two", "to": "three"}]
    graph = {"type": "graph", "start": "one", "nodes": steps, "edges": edges}
    (tmp_path / "graph.yaml").write_text(json.dumps({"version": "v1", "workflow": graph}))
    approval = [
        {"id": "draft", "kind": "function", "ref": "closingsteps:draft"},
        {"id": "approve", "kind": "human", "ref": "reviewer"},
        {"id": "two", "kind": "function", "ref": "closingsteps:two"},
    ]
    humans = {"reviewer": {"prompt": "Approve?", "assignee": "reviewer"}}
    (tmp_path / "approval.yaml").write_text(
        json.dumps(
            {
                "version": "v1",
                "workflow": {"type": "sequential", "steps": approval},
                "components": {"humans": humans},
            }
        )
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("closingsteps", None)
    settings = Settings.from_env({})
    platform = create_platform(settings, ProjectContext.discover(cwd=tmp_path, settings=settings))
    yield platform
    platform.store.close()


def _journal(store: Store) -> StoreJournal:
    with store.transaction() as tx:
        run = tx.create_run(input_text="in", workflow_name="w", target="workflow")
        run = tx.update_run(run.run_id, status="running")
    return StoreJournal(store, run.run_id, run.version)


def _boundary(
    units: int, *, closing: bool = False, replayable: bool = False, before_person: bool = False
) -> Boundary:
    state = {"format": 1, "units": {f"u{i}": {"status": "completed"} for i in range(units)}}
    return Boundary(
        kind="step_completed",
        state=state,
        step_id=f"u{units - 1}",
        closing=closing,
        replayable=replayable,
        before_person=before_person,
    )


def _final(journal: StoreJournal, state: dict[str, Any]) -> None:
    """The outcome's transaction as the platform writes it (``finish_run``)."""
    checkpoints, events = journal.final_rows(
        Boundary(kind="run_completed", state=state, status="succeeded")
    )
    run = journal.store.runs.get_run(journal.run_id)
    with journal.store.transaction() as tx:
        tx.finish_run(
            run,
            expected_version=journal.version,
            status="succeeded",
            checkpoints=checkpoints,
            events=events,
        )


@pytest.mark.parametrize("spec", ["three.yaml", "graph.yaml"])
def test_last_step_and_outcome_share_a_transaction_history_unchanged(
    manager: PlatformManager, spec: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    step_commits: list[str] = []
    write_step = Transaction.write_step

    def counted(self: Transaction, run_id: str, **kwargs: Any) -> Any:
        step_commits.extend(c.step_id for c in kwargs["checkpoints"])
        return write_step(self, run_id, **kwargs)

    monkeypatch.setattr(Transaction, "write_step", counted)
    result = manager.run_from_spec(input_text="in", spec_path=spec)
    assert step_commits == ["one", "two"]  # "three" commits with the outcome
    assert result.status == "succeeded" and result.output_text == "in one two three"
    store = manager.store
    checkpoints = store.runs.list_checkpoints(result.run_id, limit=10).items
    assert [(c.sequence, c.type, c.step_id) for c in checkpoints] == [
        (1, "step_completed", "one"),
        (2, "step_completed", "two"),
        (3, "step_completed", "three"),
        (4, "run_completed", None),
    ]
    last_step = checkpoints[2].payload
    assert last_step["units"]["three"]["output"] == "in one two three"
    assert "output" not in last_step  # the step's state, not the outcome's
    assert checkpoints[3].payload["output"] == "in one two three"
    events = store.runs.list_trace(result.run_id, limit=50).items
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    kinds = [(e.event_type, e.step_id) for e in events]
    assert kinds[-3:] == [
        ("step_started", "three"),
        ("step_completed", "three"),
        ("run_completed", None),
    ]


def test_closing_boundary_waits_for_the_outcome(manager: PlatformManager) -> None:
    store = manager.store
    journal = _journal(store)
    journal.commit(_boundary(1))
    version = journal.version
    journal.emit(TraceEvent("step_completed", "2026-01-01T00:00:00Z", "u1", "u1", {}))
    journal.commit(_boundary(2, closing=True))
    assert len(store.runs.list_checkpoints(journal.run_id).items) == 1  # held, not written
    assert store.runs.get_run(journal.run_id).version == version
    _final(journal, {"format": 1, "output": "done"})
    checkpoints = store.runs.list_checkpoints(journal.run_id).items
    assert [c.type for c in checkpoints] == ["step_completed"] * 2 + ["run_completed"]
    assert checkpoints[1].payload == _boundary(2).state
    assert [e.event_type for e in store.runs.list_trace(journal.run_id).items] == ["step_completed"]


def test_cancel_between_closing_boundary_and_outcome_writes_neither(
    manager: PlatformManager,
) -> None:
    store = manager.store
    journal = _journal(store)
    journal.commit(_boundary(1, closing=True))
    with store.transaction() as tx:
        tx.update_run(journal.run_id, status="cancelled")  # another process cancels
    with pytest.raises(Conflict):
        _final(journal, {"format": 1, "output": "done"})
    assert store.runs.list_checkpoints(journal.run_id).items == []
    assert store.runs.get_run(journal.run_id).status == "cancelled"


def test_engine_going_on_after_a_closing_boundary_flushes_it(manager: PlatformManager) -> None:
    store = manager.store
    journal = _journal(store)
    journal.commit(_boundary(1, closing=True))
    journal.emit(TraceEvent("step_started", "2026-01-01T00:00:00Z", "u1", "u1", {}))
    assert [c.sequence for c in store.runs.list_checkpoints(journal.run_id).items] == [1]
    journal.commit(_boundary(2, closing=True))
    journal.commit(_boundary(3))
    assert [c.step_id for c in store.runs.list_checkpoints(journal.run_id).items] == [
        "u0",
        "u1",
        "u2",
    ]
    journal.discard()


def test_a_run_on_one_thread_needs_one_pooled_connection(manager: PlatformManager) -> None:
    """Each step boundary and the outcome take a pooled connection in turn and give it back,
    so one is enough (on SQLite the writes share the process's writer connection and the
    pool serves the reads)."""
    manager.store.engine.dispose()
    result = manager.run_from_spec(input_text="in", spec_path="three.yaml")
    assert result.status == "succeeded"
    pool: Any = manager.store.engine.pool
    assert pool.checkedout() == 0 and pool.checkedin() == 1


def test_a_replayable_boundary_is_written_with_the_next_one(manager: PlatformManager) -> None:
    store = manager.store
    journal = _journal(store)
    version = journal.version
    journal.commit(_boundary(1, replayable=True))
    journal.emit(TraceEvent("step_started", "2026-01-01T00:00:00Z", "u1", "u1", {}))
    assert store.runs.list_checkpoints(journal.run_id).items == []  # held, even past an event
    assert store.runs.get_run(journal.run_id).version == version
    journal.commit(_boundary(2))
    checkpoints = store.runs.list_checkpoints(journal.run_id).items
    assert [(c.sequence, c.step_id) for c in checkpoints] == [(1, "u0"), (2, "u1")]
    assert [c.payload for c in checkpoints] == [_boundary(1).state, _boundary(2).state]
    assert store.runs.get_run(journal.run_id).version == version + 1  # one write for both
    assert journal.checkpoint_seq == 2
    journal.commit(_boundary(3))  # the next patch chains on the second row
    assert store.runs.list_checkpoints(journal.run_id).items[-1].payload == _boundary(3).state


def test_replayable_then_closing_boundaries_are_written_with_the_outcome(
    manager: PlatformManager,
) -> None:
    store = manager.store
    journal = _journal(store)
    journal.commit(_boundary(1))
    journal.commit(_boundary(2, replayable=True))
    journal.commit(_boundary(3, closing=True))
    assert len(store.runs.list_checkpoints(journal.run_id).items) == 1
    _final(journal, {"format": 1, "output": "done"})
    checkpoints = store.runs.list_checkpoints(journal.run_id).items
    assert [c.step_id for c in checkpoints] == ["u0", "u1", "u2", None]
    assert [c.payload for c in checkpoints[1:3]] == [_boundary(2).state, _boundary(3).state]


def test_a_discarded_replayable_boundary_is_not_written(manager: PlatformManager) -> None:
    """A run superseded while a replayable boundary waits: nothing of it is written (the
    unit runs again from the durable state wherever the run goes on)."""
    store = manager.store
    journal = _journal(store)
    journal.commit(_boundary(1, replayable=True))
    journal.discard()
    assert store.runs.list_checkpoints(journal.run_id).items == []


def test_a_step_and_the_pause_after_it_are_one_write_history_unchanged(
    manager: PlatformManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    """draft -> approve: the draft's boundary waits for the pause, whose transaction writes
    both checkpoints (the run's row moves once, created -> paused); the resume is as before."""
    step_commits: list[str | None] = []
    write_step = Transaction.write_step

    def counted(self: Transaction, run_id: str, **kwargs: Any) -> Any:
        step_commits.extend(c.step_id for c in kwargs["checkpoints"])
        return write_step(self, run_id, **kwargs)

    monkeypatch.setattr(Transaction, "write_step", counted)
    paused = manager.run_from_spec(input_text="launch", spec_path="approval.yaml")
    assert paused.status == "paused" and step_commits == []
    store = manager.store
    run = store.runs.get_run(paused.run_id)
    assert run.version == 2  # created, then paused: no write of its own for the draft
    checkpoints = store.runs.list_checkpoints(paused.run_id, limit=10).items
    assert [(c.sequence, c.type, c.step_id) for c in checkpoints] == [
        (1, "step_completed", "draft"),
        (2, "paused", "approve"),
    ]
    assert checkpoints[0].payload["units"]["draft"]["output"] == "DRAFT: launch"
    kinds = [(e.event_type, e.step_id) for e in store.runs.list_trace(paused.run_id).items]
    assert kinds[-4:] == [
        ("step_started", "draft"),
        ("step_completed", "draft"),
        ("step_started", "approve"),
        ("run_paused", None),
    ]
    assert paused.continuation_id is not None and paused.request_id is not None
    done = manager.resume(paused.continuation_id, Decision(paused.request_id, "approved"))
    assert done.status == "succeeded" and done.output_text == "DRAFT: launch two"
    # the resume's steps: the approval rides with the next step's write, which is the last
    assert step_commits == []


def test_a_step_before_a_function_step_is_written_at_once(
    manager: PlatformManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a human step comes with no effect outside the run: before any other step the
    boundary is durable before that step starts."""
    seen: list[int] = []
    write_step = Transaction.write_step

    def counted(self: Transaction, run_id: str, **kwargs: Any) -> Any:
        seen.append(len(kwargs["checkpoints"]))
        return write_step(self, run_id, **kwargs)

    monkeypatch.setattr(Transaction, "write_step", counted)
    assert manager.run_from_spec(input_text="in", spec_path="three.yaml").status == "succeeded"
    assert seen == [1, 1]


def test_a_boundary_before_a_person_waits_for_the_next_one_only(manager: PlatformManager) -> None:
    """Held past events until the person's unit commits; then both go out together, and
    nothing is held past that (the unit after the person may act outside the run)."""
    store = manager.store
    journal = _journal(store)
    version = journal.version
    journal.commit(_boundary(1, before_person=True))
    journal.emit(TraceEvent("step_started", "2026-01-01T00:00:00Z", "u1", "u1", {}))
    assert store.runs.list_checkpoints(journal.run_id).items == []
    journal.commit(_boundary(2, replayable=True))  # even a replayable one goes out now
    checkpoints = store.runs.list_checkpoints(journal.run_id).items
    assert [(c.sequence, c.step_id) for c in checkpoints] == [(1, "u0"), (2, "u1")]
    assert store.runs.get_run(journal.run_id).version == version + 1
    journal.discard()


def test_a_boundary_before_a_person_is_written_with_the_outcome(manager: PlatformManager) -> None:
    store = manager.store
    journal = _journal(store)
    journal.commit(_boundary(1, before_person=True))
    _final(journal, {"format": 1, "output": "done"})
    checkpoints = store.runs.list_checkpoints(journal.run_id).items
    assert [c.step_id for c in checkpoints] == ["u0", None]


def test_a_discarded_boundary_before_a_person_is_not_written(manager: PlatformManager) -> None:
    store = manager.store
    journal = _journal(store)
    journal.commit(_boundary(1, before_person=True))
    journal.discard()
    assert store.runs.list_checkpoints(journal.run_id).items == []
