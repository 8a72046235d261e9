"""Conformance: the run create/outcome write path's shortcuts keep the same rows.

The ``specs`` insert is skipped once this store committed the digest, a new run's first trace
events are counted in its insert, an outcome's update reads back only version and counters,
and a metadata snapshot answers several keys from one query. Each runs on SQLite and, with
``KNEO_TEST_DATABASE_URL``, PostgreSQL (where the raw transaction uses pipeline mode).
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
import sqlalchemy as sa

from kneo.errors import Conflict
from kneo.store import AuditQuery, Store
from kneo.store import tables as t
from kneo.store import transaction as transaction_module
from kneo.store.row_values import spec_ref
from kneo.store.runs.steps import StepCheckpoint, json_text
from kneo.store.wire.executor import LoneRead

from .conftest import StoreFactory

SPEC = {"version": "v1", "workflow": {"name": "w", "steps": [{"id": "a"}]}}


def _spec_rows(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(t.specs)).scalar_one())


def _create(store: Store, spec: dict[str, Any] = SPEC, **kwargs: Any) -> Any:
    with store.transaction() as tx:
        return tx.create_run(target="workflow", input_text="x", spec=spec, **kwargs)


def test_spec_row_written_once_and_held_after_commit(store: Store) -> None:
    """The second run of a spec skips the insert; both read the spec back whole."""
    first = _create(store)
    ref = spec_ref(json_text(SPEC))
    assert ref in store.specs_held
    second = _create(store, spec_text=json_text(SPEC))
    assert _spec_rows(store) == 1
    assert store.runs.get_run(first.run_id).spec == SPEC == store.runs.get_run(second.run_id).spec


def test_rolled_back_spec_insert_is_not_held(store: Store) -> None:
    """A transaction that rolls back leaves no row, so the digest must not be remembered:
    the next run of that spec inserts it again and reads back whole."""
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.create_run(target="workflow", input_text="x", spec=SPEC)
        raise RuntimeError("boom")
    assert _spec_rows(store) == 0 and not store.specs_held
    run = _create(store)
    assert _spec_rows(store) == 1 and store.runs.get_run(run.run_id).spec == SPEC


def test_other_store_inserts_spec_it_has_not_seen(make_store: StoreFactory) -> None:
    """Another process (here: another store on the same database) holds nothing yet and
    writes the spec itself; the shared content-addressed row stays one row."""
    one, two = make_store(), make_store()
    _create(one)
    run = _create(two)
    assert _spec_rows(one) == 1 and two.runs.get_run(run.run_id).spec == SPEC
    with two.transaction() as tx:  # the Core transaction shares the skip
        other = tx.create_run(target="workflow", input_text="y", spec=SPEC)
    assert _spec_rows(one) == 1 and one.runs.get_run(other.run_id).spec == SPEC


def test_first_events_counted_in_the_insert(store: Store) -> None:
    events = [{"event_type": "run_created"}, {"event_type": "run_started", "payload": {"o": 1}}]
    run = _create(store, events=events)
    assert run.trace_seq == 2 == store.runs.get_run(run.run_id).trace_seq
    with store.transaction() as tx:
        tx.add_trace_events(run.run_id, [{"event_type": "later"}])
    trace = store.runs.list_trace(run.run_id, limit=10).items
    assert [(e.sequence, e.event_type) for e in trace] == [
        (1, "run_created"),
        (2, "run_started"),
        (3, "later"),
    ]
    assert trace[1].payload == {"o": 1}


def test_finish_run_returns_what_a_read_returns(store: Store) -> None:
    run = _create(store, status="running", events=[{"event_type": "run_created"}])
    with store.transaction() as tx:
        tx.add_trace_events(run.run_id, [{"event_type": "run_completed"}])
        done = tx.finish_run(
            run,
            expected_version=run.version,
            status="succeeded",
            output_text="out",
            state={"units": {"a": 1}},
            finished_at=tx.now,
        )
    read = store.runs.get_run(run.run_id)
    assert done == read
    assert (
        (done.version, done.trace_seq, done.status)
        == (2, 2, "succeeded")
        == (
            read.version,
            read.trace_seq,
            read.status,
        )
    )


def test_finish_run_is_compare_and_set(store: Store) -> None:
    run = _create(store, status="running")
    with store.transaction() as tx:
        tx.update_run(run.run_id, expected_version=run.version, cancel_requested=True)
    with pytest.raises(Conflict) as caught, store.transaction() as tx:
        tx.add_trace_events(run.run_id, [{"event_type": "run_completed"}])
        tx.finish_run(run, expected_version=run.version, status="succeeded")
    assert caught.value.code == "stale_state"
    after = store.runs.get_run(run.run_id)
    assert after.status == "running" and after.version == 2
    assert store.runs.list_trace(run.run_id, limit=10).total == 0


def test_metadata_snapshot_one_query(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside a snapshot the listed keys come from one read (set or unset; on the driver,
    :class:`LoneRead`); other keys, other threads and reads after it go to the database."""
    with store.transaction() as tx:
        tx.set_metadata("a", {"v": 1})
        tx.set_metadata("c", 3)
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    lone = LoneRead.execute

    def count_lone(self: LoneRead, sql: str, args: Any) -> Any:
        statements.append(sql)
        return lone(self, sql, args)

    monkeypatch.setattr(LoneRead, "execute", count_lone)
    sa.event.listen(store.engine, "before_cursor_execute", count)
    try:
        with store.metadata.metadata_snapshot(["a", "b"]):
            reads = len(statements)
            assert store.metadata.get_metadata("a") == {"v": 1}
            assert store.metadata.get_metadata("b", "dflt") == "dflt"
            assert len(statements) == reads  # answered from the snapshot
            assert store.metadata.get_metadata("c") == 3  # not listed: read
            assert len(statements) > reads
            with store.transaction() as tx:
                tx.set_metadata("a", {"v": 2})
            seen: list[Any] = []
            thread = threading.Thread(target=lambda: seen.append(store.metadata.get_metadata("a")))
            thread.start()
            thread.join()
            assert seen == [{"v": 2}]  # another thread (another request) reads fresh
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", count)
    assert sum("project_metadata" in s for s in statements[:reads]) == 1
    assert store.metadata.get_metadata("a") == {"v": 2}  # no cache after the snapshot


def test_a_metadata_snapshot_in_a_transaction_reads_what_it_sees(store: Store) -> None:
    """With a transaction, the snapshot is that transaction's view (its own uncommitted
    writes included, one statement), and a rollback leaves the stored values as they were."""
    with store.transaction() as tx:
        tx.set_metadata("a", {"v": 1})
        tx.set_metadata("n", None)
    with pytest.raises(RuntimeError), store.transaction() as tx:
        assert tx.metadata(["a", "b", "n"]) == {"a": {"v": 1}, "n": None}
        tx.set_metadata("a", {"v": 2})
        tx.set_metadata("b", [1])
        with store.metadata.metadata_snapshot(["a", "b", "c"], tx):
            assert store.metadata.get_metadata("a") == {"v": 2}
            assert store.metadata.get_metadata("b") == [1]
            assert store.metadata.get_metadata("c", "unset") == "unset"
        raise RuntimeError("abort")
    assert store.metadata.get_metadata("a") == {"v": 1}
    assert store.metadata.get_metadata("b", "unset") == "unset"


@pytest.mark.parametrize("failure", ["python", "database", "commit"])
def test_a_failed_raw_transaction_leaves_nothing_and_its_connection_transactional(
    store: Store, failure: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whether the code or the database fails mid-transaction or at its commit (on
    PostgreSQL inside a pipeline, in autocommit with its own BEGIN; "commit": an insert that
    waited for the commit fails there), nothing it wrote stays, and the connection goes back
    transactional: the next transactions on the pool still roll back whole."""

    with pytest.raises((RuntimeError, Conflict)), store.transaction() as tx:
        tx.create_run(target="workflow", input_text="x", run_id="run_failed")
        tx.add_audit("x.created", run_id="run_failed")
        if failure == "python":
            raise RuntimeError("boom")
        if failure == "commit":  # two generated ids that clash, neither read back
            with monkeypatch.context() as patch:
                patch.setattr(transaction_module, "new_run_id", lambda now: "run_same")
                tx.create_run(target="workflow", input_text="y")
                tx.create_run(target="workflow", input_text="y")
        else:
            tx.create_run(target="workflow", input_text="x", run_id="run_failed")  # duplicate
    assert store.runs.list_runs().total == 0
    assert store.audit.list_audit().total == 0
    for _ in range(3):  # every pooled connection the store may hand out
        with pytest.raises(RuntimeError), store.transaction() as core:
            core.create_run(target="workflow", input_text="y")
            raise RuntimeError("boom")
        with pytest.raises(RuntimeError), store.transaction() as raw:
            raw.create_run(target="workflow", input_text="z")
            raise RuntimeError("boom")
    assert store.runs.list_runs().total == 0
    run = _create(store)
    assert store.runs.list_runs().total == 1 and store.runs.get_run(run.run_id).status == "queued"


def test_a_generated_run_id_that_clashes_fails_the_transaction(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A generated run id is not read back after its insert (no round trip in psycopg's
    pipeline); should one ever repeat, the insert still fails, and with it the transaction."""

    monkeypatch.setattr(transaction_module, "new_run_id", lambda now: "run_same")
    first = _create(store)
    with pytest.raises(Conflict), store.transaction() as tx:
        tx.create_run(target="workflow", input_text="again")
        tx.add_audit("run.created", run_id="run_same")
    assert first.run_id == "run_same" and store.runs.get_run("run_same").input_text == "x"
    assert store.runs.list_runs().total == 1 and store.audit.list_audit().total == 0


def _keyframe(step_id: str) -> StepCheckpoint:
    payload = json_text({"step": step_id}).encode()
    return StepCheckpoint(
        "step_completed", step_id, "completed", "json", payload, len(payload), False, {"n": "ü"}
    )


_AUDITS = [
    {"event_type": "human.requested", "run_id": "?", "continuation_id": "cont_1"},
    {
        "event_type": "human.decision",
        "actor": "reviewer-key",
        "run_id": "?",
        "payload": {"decision": "approved", "token": "sk-live-0123456789abcdef0123"},
    },
]


def _finish_with_rows(store: Store, run: Any, **kwargs: Any) -> Any:
    with store.transaction() as tx:
        return tx.finish_run(
            run,
            expected_version=run.version,
            **{"status": "succeeded", "output_text": "out", **kwargs},
            release_lease="me",
            checkpoints=[_keyframe("a"), _keyframe("b")],
            events=[{"event_type": "run_completed", "payload": {"n": 1}}, {"event_type": "x"}],
            audits=[dict(a, run_id=run.run_id) for a in _AUDITS],
        )


def test_an_outcome_writes_its_rows_audits_and_lease_in_one_commit(store: Store) -> None:
    """An outcome with nothing before it (on PostgreSQL: one statement): checkpoints and
    events numbered after the run's own, audits redacted, the owner's lease released."""
    with store.transaction() as tx:
        run = tx.create_run(
            target="workflow",
            input_text="x",
            status="running",
            events=[{"event_type": "run_created"}],
            lease=("me", 60),
        )
    done = _finish_with_rows(store, run, output_text=None)  # no words to index: one statement
    assert done == store.runs.get_run(run.run_id)
    assert (done.version, done.checkpoint_seq, done.trace_seq) == (2, 2, 3)
    assert store.queue.run_lease(run.run_id) is None
    cps = store.runs.list_checkpoints(run.run_id).items
    assert [(c.sequence, c.step_id, c.payload, c.metadata) for c in cps] == [
        (1, "a", {"step": "a"}, {"n": "ü"}),
        (2, "b", {"step": "b"}, {"n": "ü"}),
    ]
    trace = store.runs.list_trace(run.run_id, limit=10).items
    assert [(e.sequence, e.event_type, e.payload) for e in trace] == [
        (1, "run_created", {}),
        (2, "run_completed", {"n": 1}),
        (3, "x", {}),
    ]
    audits = store.audit.list_audit(AuditQuery(run_id=run.run_id)).items  # newest first
    assert [(a.event_type, a.actor, a.continuation_id) for a in audits] == [
        ("human.decision", "reviewer-key", None),
        ("human.requested", None, "cont_1"),
    ]
    assert audits[0].payload["decision"] == "approved"
    assert "sk-live" not in json_text(audits[0].payload)  # redacted like add_audit


def test_a_stale_outcome_writes_none_of_its_rows(store: Store) -> None:
    run = _create(store, status="running")
    with store.transaction() as tx:
        tx.update_run(run.run_id, expected_version=run.version, cancel_requested=True)
    with pytest.raises(Conflict) as caught:
        _finish_with_rows(store, run)
    assert caught.value.code == "stale_state"
    assert store.runs.get_run(run.run_id).status == "running"
    assert store.runs.list_checkpoints(run.run_id).total == 0
    assert store.runs.list_trace(run.run_id, limit=10).total == 0
    assert store.audit.list_audit(AuditQuery(run_id=run.run_id)).total == 0


@pytest.mark.parametrize("before", [False, True])
def test_an_outcome_commits_its_transaction_and_nothing_may_follow(
    store: Store, before: bool
) -> None:
    """``finish_run`` is the transaction's last write on every backend and path: it commits
    (with what came before it), and a statement after it raises without undoing it."""
    run = _create(store, status="running")
    with pytest.raises(RuntimeError, match="nothing may follow"), store.transaction() as tx:
        if before:  # the stepwise path: a read and an insert first
            tx.add_trace_events(run.run_id, [{"event_type": "before"}])
        tx.finish_run(run, expected_version=run.version, status="succeeded")
        tx.add_audit("after", run_id=run.run_id)
    after = store.runs.get_run(run.run_id)
    assert (after.status, after.version, after.trace_seq) == ("succeeded", 2, int(before))
    assert store.runs.list_trace(run.run_id, limit=10).total == int(before)
    assert store.audit.list_audit(AuditQuery(run_id=run.run_id)).total == 0


@pytest.mark.parametrize("count", [3, 70])
def test_an_outcome_stores_every_row_in_order(store: Store, count: int) -> None:
    """Past 64 rows of a kind (on PostgreSQL no longer one statement) nothing changes."""
    run = _create(store, status="running", events=[{"event_type": "run_created"}])
    with store.transaction() as tx:
        done = tx.finish_run(
            run,
            expected_version=run.version,
            status="succeeded",
            checkpoints=[_keyframe(f"s{i}") for i in range(count)],
            events=[{"event_type": "e", "payload": {"i": i}} for i in range(count)],
            audits=[{"event_type": "a", "run_id": run.run_id}] * count,
        )
    assert (done.checkpoint_seq, done.trace_seq) == (count, count + 1)
    cps = store.runs.list_checkpoints(run.run_id, limit=100).items
    assert [(c.sequence, c.step_id) for c in cps] == [(i + 1, f"s{i}") for i in range(count)]
    trace = store.runs.list_trace(run.run_id, limit=100).items[1:]
    assert [(e.sequence, e.payload) for e in trace] == [(i + 2, {"i": i}) for i in range(count)]
    assert store.audit.list_audit(AuditQuery(run_id=run.run_id, limit=100)).total == count
