"""Runs executing on several threads of one process at once (the service's request threads,
an embedded worker's), on both databases: each finishes whole, nothing is lost or mixed up."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kneo import Decision
from kneo.errors import KneoError
from kneo.platform import create_platform
from kneo.settings import Settings
from kneo.store import AuditQuery, TaskQuery

SPEC = (
    "version: v1\n"
    "workflow:\n"
    "  type: sequential\n"
    "  name: threaded-steps\n"
    "  steps:\n"
    "    - {id: a, kind: function, ref: examples.human_functions:draft_report}\n"
    "    - {id: b, kind: function, ref: examples.human_functions:publish_report}\n"
)


def _platform(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, spec_text: str
) -> tuple[Any, Path]:
    """A platform on ``backend`` (a fresh database) and a spec file of ``spec_text``."""
    url = f"sqlite:///{tmp_path / 'r.db'}"
    if backend == "postgresql":
        new_database: Callable[[], str] = request.getfixturevalue("pg_database")
        url = new_database()
    spec = tmp_path / "spec.yaml"
    spec.write_text(spec_text)
    return create_platform(Settings.from_env({"KNEO_SERV_DATABASE_URL": url})), spec


def _at_once(calls: list[Callable[[], str]]) -> list[str]:
    """Each of ``calls`` on its own thread, released together: what each returned, or the
    code of the error it raised."""
    start = threading.Barrier(len(calls))
    outcomes: list[str] = []

    def act(call: Callable[[], str]) -> None:
        start.wait(10)
        try:
            outcomes.append(call())
        except KneoError as exc:
            outcomes.append(exc.code)

    threads = [threading.Thread(target=act, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return outcomes


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_runs_on_several_threads_each_finish_whole(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    manager, spec = _platform(backend, tmp_path, request, SPEC)
    results: list[tuple[str, str]] = []
    lock = threading.Lock()

    def work(thread: int) -> None:
        for n in range(10):
            result = manager.run_from_spec(input_text=f"topic {thread}-{n}", spec_path=spec)
            with lock:
                results.append((result.status, result.run_id))

    threads = [threading.Thread(target=work, args=(t,), daemon=True) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    try:
        assert [status for status, _ in results] == ["succeeded"] * 40
        assert len({run_id for _, run_id in results}) == 40
        for _, run_id in results[::10]:
            run = manager.get_run_record(run_id)
            assert (run.status, run.checkpoint_seq) == ("succeeded", 3)  # two steps, the outcome
    finally:
        manager.store.close()


APPROVAL = (
    "version: v1\n"
    "workflow:\n"
    "  type: sequential\n"
    "  name: raced-approval\n"
    "  steps:\n"
    "    - {id: a, kind: function, ref: examples.human_functions:draft_report}\n"
    "    - {id: review, kind: human, ref: reviewer}\n"
    "    - {id: b, kind: function, ref: examples.human_functions:publish_report}\n"
    "components:\n"
    "  humans:\n"
    "    reviewer: {prompt: Publish?, assignee: reviewer}\n"
)


def _race(manager: Any, paused: Any) -> list[str]:
    """Two approvals of ``paused``'s request and a cancel of its run, at once: what each
    returned (a status or an error's code)."""
    approve = functools.partial(_decide, manager, paused.continuation_id, paused.request_id)
    return _at_once([approve, approve, lambda: str(manager.cancel(paused.run_id).status)])


def _decide(manager: Any, continuation_id: str, request_id: str) -> str:
    return str(manager.resume(continuation_id, Decision(request_id, "approved")).status)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_racing_decisions_and_cancels_on_one_task_end_it_once(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Per paused run, two people approve the one request and a third cancels the run, all
    at once. A decision reads the task and its run row-locked (the run's row first, as a
    cancel takes them), so nothing deadlocks and nothing is decided twice: the run ends
    succeeded (one decision applied) or cancelled, and every loser gets a stable error."""
    manager, spec = _platform(backend, tmp_path, request, APPROVAL)
    try:
        for _ in range(8):
            paused = manager.run_from_spec(input_text="launch", spec_path=spec)
            outcomes = _race(manager, paused)
            run = manager.get_run_record(paused.run_id)
            assert run.status in ("succeeded", "cancelled"), outcomes
            assert outcomes.count("succeeded") <= 1, outcomes
            assert set(outcomes) <= {
                "succeeded", "cancelled", "request_already_resolved", "resource_locked",
                "illegal_transition", "not_found", "stale_state",
            }, outcomes  # fmt: skip
            published = manager.store.audit.list_audit(
                AuditQuery(run_id=paused.run_id, event_type="human.decision")
            )
            if run.status == "succeeded":
                assert published.total == 1 and outcomes.count("succeeded") == 1, outcomes
    finally:
        manager.store.close()


TWO_REVIEWERS = (
    "version: v1\n"
    "workflow:\n"
    "  type: concurrent\n"
    "  name: two-reviewers\n"
    "  participants:\n"
    "    - {id: h1, kind: human, ref: r1}\n"
    "    - {id: h2, kind: human, ref: r2}\n"
    "components:\n"
    "  humans:\n"
    "    r1: {prompt: One?, assignee: one}\n"
    "    r2: {prompt: Two?, assignee: two}\n"
)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_decisions_on_both_requests_of_one_task_at_once_are_both_applied(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The second of two decisions sent at once waits for the first's locks, reads what it
    wrote (the task still pending, its own request too) and applies its own; the run goes
    on once, after both, and the inbox shows the task to neither assignee any more."""
    manager, spec = _platform(backend, tmp_path, request, TWO_REVIEWERS)
    try:
        for _ in range(4):
            paused = manager.run_from_spec(input_text="go", spec_path=spec)
            ids = [r["request_id"] for r in paused.metadata["pending_human_requests"]]
            decide = functools.partial(_decide, manager, paused.continuation_id)
            results = _at_once([functools.partial(decide, i) for i in ids])
            assert sorted(results) == ["paused", "succeeded"]
            assert manager.get_run_record(paused.run_id).status == "succeeded"
            audit = manager.store.audit.list_audit(
                AuditQuery(run_id=paused.run_id, event_type="human.decision")
            )
            assert audit.total == 2
            for person in ("one", "two"):
                assert manager.store.tasks.list_continuations(TaskQuery(assignee=person)).total == 0
    finally:
        manager.store.close()
