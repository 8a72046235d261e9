"""PostgreSQL where libpq has no pipeline mode (psycopg's ``Pipeline.is_supported()`` is
false before libpq 14): a write transaction that reads runs statement by statement in an
ordinary transaction. The pipeline stays for its round trips (docs/performance.md), so its
fallback is tested here explicitly: it commits whole, rolls back whole and gives the
connection back transactional, and a step boundary and an outcome after a read store what
they store in the pipeline."""

from __future__ import annotations

from typing import Any, NoReturn

import psycopg
import pytest

from kneo.errors import Conflict
from kneo.store import AuditQuery, Store
from kneo.store.runs import steps

from .helpers import new_run

ONLY_POSTGRESQL = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


@pytest.fixture
def unpipelined(store: Store, monkeypatch: pytest.MonkeyPatch) -> Store:
    """``store`` as Kneo runs where the pipeline is not supported; entering one fails."""
    monkeypatch.setattr(store.dialect, "pipeline", False)

    def no_pipeline(self: Any) -> NoReturn:
        raise AssertionError("the pipeline was entered")

    monkeypatch.setattr(psycopg.Connection, "pipeline", no_pipeline)
    return store


@ONLY_POSTGRESQL
def test_writes_around_a_read_commit_together(unpipelined: Store) -> None:
    store = unpipelined
    run_id = new_run(store, status="running")
    with store.transaction() as tx:
        tx.add_audit("one", run_id=run_id)
        tx.add_trace_events(run_id, [{"event_type": "e"}])  # reads the run's counters
        tx.add_audit("two", run_id=run_id)
    assert store.audit.list_audit(AuditQuery(run_id=run_id)).total == 2
    assert store.runs.get_run(run_id).trace_seq == 1


@ONLY_POSTGRESQL
@pytest.mark.parametrize("failure", ["python", "database"])
def test_a_failure_after_a_read_leaves_nothing_and_the_connection_transactional(
    unpipelined: Store, failure: str
) -> None:
    store = unpipelined
    run_id = new_run(store, status="running")
    with pytest.raises((RuntimeError, Conflict)), store.transaction() as tx:
        tx.add_audit("lost", run_id=run_id)
        tx.add_trace_events(run_id, [{"event_type": "lost"}])
        if failure == "python":
            raise RuntimeError("boom")
        tx.create_run(target="workflow", input_text="x", run_id=run_id)  # duplicate key
    assert store.audit.list_audit(AuditQuery(run_id=run_id)).total == 0
    assert store.runs.get_run(run_id).trace_seq == 0
    for _ in range(3):  # every pooled connection: still transactional, rolls back whole
        with pytest.raises(RuntimeError), store.transaction() as tx:
            tx.get_run(run_id)
            tx.add_audit("lost", run_id=run_id)
            raise RuntimeError("boom")
    assert store.audit.list_audit(AuditQuery(run_id=run_id)).total == 0


@ONLY_POSTGRESQL
def test_a_step_and_an_outcome_after_a_read_are_stored_whole(unpipelined: Store) -> None:
    store = unpipelined
    run_id = new_run(store, status="running")
    row = steps.StepCheckpoint("step_completed", "s", "completed", "json", b"{}", 2, False, {})
    with store.transaction() as tx:
        run = tx.get_run(run_id)  # a read first: the boundary goes statement by statement
        written = tx.write_step(
            run_id,
            expected_version=run.version,
            state_text='{"n":1}',
            checkpoints=[row],
            events=[steps.StepEvent("step_completed", "s", "{}")],
        )
    assert (written.version, written.checkpoint_seq) == (run.version + 1, 1)
    with store.transaction() as tx:
        run = tx.get_run(run_id)
        done = tx.finish_run(
            run,
            expected_version=run.version,
            status="succeeded",
            events=[{"event_type": "run_succeeded"}],
            audits=[{"event_type": "run.succeeded", "run_id": run_id}],
        )
    stored = store.runs.get_run(run_id)
    assert (stored.status, stored.version, stored.trace_seq) == ("succeeded", done.version, 2)
    assert stored.state == {"n": 1}
    assert store.audit.list_audit(AuditQuery(run_id=run_id)).total == 1
    with pytest.raises(Conflict), store.transaction() as tx:  # the compare-and-set holds
        tx.get_run(run_id)
        tx.finish_run(run, expected_version=run.version, status="failed")
    assert store.runs.get_run(run_id).status == "succeeded"
