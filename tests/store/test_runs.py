"""Conformance: runs, compare-and-set, step-boundary transactions, sequences, audit."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from kneo.clock import ManualClock
from kneo.errors import Conflict, InvalidRequest, NotFound
from kneo.store import AuditQuery, RunQuery, Store
from tests.queue_records import queue_records

from .helpers import new_run


def test_create_and_get_round_trip(store: Store, clock: ManualClock) -> None:
    """Every field written at creation reads back identically, timestamps UTC-aware."""
    deadline = clock.now() + timedelta(hours=1)
    with store.transaction() as tx:
        created = tx.create_run(
            run_id="run_1",
            target="agent",
            input_text="héllo",
            workflow_name="wf",
            workflow_kind="graph",
            agent_name="a",
            environment="dev",
            spec={"k": [1, 2]},
            spec_digest="sha256:x",
            bundle_name="b",
            bundle_revision=3,
            bundle_commit="abc",
            state={"next": 0},
            deadline_at=deadline,
            metadata={"m": True},
        )
    got = store.runs.get_run("run_1")
    assert got == created
    assert got.version == 1 and got.status == "queued" and not got.cancel_requested
    assert got.deadline_at == deadline and got.created_at.tzinfo is not None
    assert got.spec == {"k": [1, 2]} and got.bundle_revision == 3


def test_unknown_run_is_not_found(store: Store) -> None:
    """Reading or updating a missing run raises NotFound with code not_found."""
    with pytest.raises(NotFound) as err:
        store.runs.get_run("run_missing")
    assert err.value.code == "not_found"
    with pytest.raises(NotFound), store.transaction() as tx:
        tx.update_run("run_missing", status="running")


def test_duplicate_run_id_conflicts(store: Store) -> None:
    """Creating a run id twice is a Conflict (already_exists), the first run untouched."""
    new_run(store, run_id="run_dup", input_text="first")
    with pytest.raises(Conflict) as err:
        new_run(store, run_id="run_dup", input_text="second")
    assert err.value.code == "already_exists"
    assert store.runs.get_run("run_dup").input_text == "first"


def test_stale_update_is_refused(store: Store) -> None:
    """update_run with an old expected_version raises stale_state and changes nothing."""
    run_id = new_run(store)
    with store.transaction() as tx:
        first = tx.update_run(run_id, expected_version=1, status="running", state={"step": 1})
    assert first.version == 2
    with pytest.raises(Conflict) as err, store.transaction() as tx:
        tx.update_run(run_id, expected_version=1, status="succeeded")
    assert err.value.code == "stale_state"
    assert err.value.details["current_version"] == 2
    current = store.runs.get_run(run_id)
    assert (current.status, current.state, current.version) == ("running", {"step": 1}, 2)


def test_only_one_of_concurrent_cas_writers_wins(store: Store) -> None:
    """Eight threads resuming from the same version: exactly one update applies."""
    run_id = new_run(store, status="paused")
    results: list[str] = []
    barrier = threading.Barrier(8)

    def resume(n: int) -> None:
        barrier.wait()
        try:
            with store.transaction() as tx:
                tx.update_run(run_id, expected_version=1, status="running", metadata={"by": n})
            results.append("ok")
        except Conflict:
            results.append("stale")

    threads = [threading.Thread(target=resume, args=(n,)) for n in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(results) == ["ok"] + ["stale"] * 7
    assert store.runs.get_run(run_id).version == 2


def test_update_rejects_unknown_fields(store: Store) -> None:
    """Identity and bookkeeping columns cannot be changed through update_run."""
    run_id = new_run(store)
    with pytest.raises(InvalidRequest), store.transaction() as tx:
        tx.update_run(run_id, run_id="other")
    with pytest.raises(InvalidRequest), store.transaction() as tx:
        tx.update_run(run_id, version=10)


def test_cancel_request_invalidates_stale_writers(store: Store) -> None:
    """A cancel request sets the flag and bumps the version, so a worker's finish CAS fails."""
    run_id = new_run(store, status="running")
    with store.transaction() as tx:
        cancelled = tx.update_run(run_id, cancel_requested=True)
    assert cancelled.cancel_requested and cancelled.version == 2
    with pytest.raises(Conflict), store.transaction() as tx:
        tx.update_run(run_id, expected_version=1, status="succeeded")


def test_step_boundary_transaction_is_atomic(store: Store) -> None:
    """An exception inside the unit of work rolls back run change, checkpoint, trace, audit."""
    run_id = new_run(store)
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.update_run(run_id, expected_version=1, status="running", state={"next": 1})
        tx.add_checkpoint(run_id, type="step_completed", step_id="s1", payload={"out": 1})
        tx.add_trace_events(run_id, [{"event_type": "step.completed", "step_id": "s1"}])
        tx.add_audit("run.step", run_id=run_id)
        tx.enqueue(run_id)
        raise RuntimeError("crash before commit")
    run = store.runs.get_run(run_id)
    assert (run.version, run.status, run.state) == (1, "queued", {})
    assert store.runs.list_checkpoints(run_id).total == 0
    assert store.runs.list_trace(run_id).total == 0
    assert store.audit.list_audit(AuditQuery(run_id=run_id)).total == 0
    assert queue_records(store, run_id) == []
    # ...and the same unit of work commits everything together.
    with store.transaction() as tx:
        tx.update_run(run_id, expected_version=1, status="running", state={"next": 1})
        tx.add_checkpoint(run_id, type="step_completed", step_id="s1", payload={"out": 1})
    assert store.runs.get_run(run_id).state == {"next": 1}
    assert store.runs.list_checkpoints(run_id).items[0].step_id == "s1"


def test_stale_cas_inside_transaction_rolls_back_siblings(store: Store) -> None:
    """A refused CAS aborts the unit of work: the checkpoint written before it is gone too."""
    run_id = new_run(store)
    with store.transaction() as tx:
        tx.update_run(run_id, expected_version=1, status="running")
    with pytest.raises(Conflict), store.transaction() as tx:
        tx.add_checkpoint(run_id, type="step_completed", payload={})
        tx.update_run(run_id, expected_version=1, state={"next": 9})
    assert store.runs.list_checkpoints(run_id).total == 0


def test_sequences_are_per_run_and_contiguous(store: Store) -> None:
    """Checkpoint and trace sequences start at 1 per run and follow insertion order."""
    a, b = new_run(store), new_run(store)
    with store.transaction() as tx:
        assert tx.add_checkpoint(a, type="t", payload={}).sequence == 1
        assert tx.add_checkpoint(a, type="t", payload={}).sequence == 2
        assert tx.add_checkpoint(b, type="t", payload={}).sequence == 1
        events = tx.add_trace_events(a, [{"event_type": f"e{i}"} for i in range(3)])
        assert [e.sequence for e in events] == [1, 2, 3]
        assert tx.add_trace_events(a, [{"event_type": "e3"}])[0].sequence == 4
    assert [e.event_type for e in store.runs.list_trace(a).items] == ["e0", "e1", "e2", "e3"]
    assert [c.sequence for c in store.runs.list_checkpoints(a, sort_order="desc").items] == [2, 1]


def test_concurrent_checkpoint_writers_get_distinct_sequences(store: Store) -> None:
    """Threads appending to one run never allocate the same sequence number."""
    run_id = new_run(store)

    def write() -> None:
        for _ in range(5):
            with store.transaction() as tx:
                tx.add_checkpoint(run_id, type="t", payload={})

    threads = [threading.Thread(target=write) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    page = store.runs.list_checkpoints(run_id)
    assert [c.sequence for c in page.items] == list(range(1, 21))


def test_checkpoint_for_missing_run_is_not_found(store: Store) -> None:
    """Checkpoints and trace events need an existing run."""
    with pytest.raises(NotFound), store.transaction() as tx:
        tx.add_checkpoint("run_nope", type="t", payload={})
    with pytest.raises(NotFound), store.transaction() as tx:
        tx.add_trace_events("run_nope", [{"event_type": "x"}])


def test_list_runs_filters_sorts_and_pages(store: Store, clock: ManualClock) -> None:
    """list_runs filters by status, sorts with a stable tie-break and reports the total."""
    ids = []
    for i in range(5):
        ids.append(new_run(store, run_id=f"run_{i}", status="paused" if i % 2 else "queued"))
        clock.advance(1)
    page = store.runs.list_runs(RunQuery(limit=2, offset=1, sort_by="created_at", sort_order="asc"))
    assert [r.run_id for r in page.items] == ids[1:3] and page.total == 5
    paused = store.runs.list_runs(RunQuery(status="paused", sort_order="desc"))
    assert [r.run_id for r in paused.items] == ["run_3", "run_1"] and paused.total == 2
    both = store.runs.list_runs(RunQuery(status=("paused", "queued"), limit=10))
    assert both.total == 5 and (both.sort_by, both.sort_order) == ("created_at", "desc")
    clock.advance(5)
    with store.transaction() as tx:
        tx.update_run("run_0", status="running")
    assert store.runs.list_runs(RunQuery(sort_by="updated_at")).items[0].run_id == "run_0"
    assert (
        store.runs.list_runs(RunQuery(sort_by="status", sort_order="asc")).items[0].status
        == "paused"
    )


@pytest.mark.parametrize("order", ["desc", "asc"])
def test_runs_by_update_merge_running_and_settled_runs(
    store: Store, clock: ManualClock, order: str
) -> None:
    """Sorted by ``updated_at``, running runs (left out of that order's index) and settled
    ones interleave as their times say, page by cursor and by offset alike, and a status
    filter narrows either walk; the same order as sorting every run in memory."""
    statuses = ["running", "paused", "succeeded", "running", "failed", "queued"]
    for i in range(18):
        new_run(store, run_id=f"run_{i:02d}", status="queued")
        clock.advance(1)
    for i in (5, 11, 2, 17, 8, 0, 14, 3, 9, 12, 6, 15, 1, 16, 4, 13, 7, 10):  # a new order
        with store.transaction() as tx:
            tx.update_run(f"run_{i:02d}", status=statuses[i % len(statuses)])
        clock.advance(1)
    with store.transaction() as tx:
        tx.update_run("run_01", status="running")  # settled -> running moves it again
    every = store.runs.list_runs(RunQuery(limit=100, sort_by="updated_at", sort_order=order)).items
    expected = sorted(every, key=lambda r: (r.updated_at, r.run_id), reverse=order == "desc")
    assert [r.run_id for r in every] == [r.run_id for r in expected] and len(every) == 18
    assert every[0 if order == "desc" else -1].run_id == "run_01"

    def walk(**filters: object) -> list[str]:
        seen, cursor = [], None
        while True:
            page = store.runs.list_runs(
                RunQuery(limit=4, sort_by="updated_at", sort_order=order, cursor=cursor, **filters)
            )  # type: ignore[arg-type]
            seen += [r.run_id for r in page.items]
            if page.next_cursor is None:
                return seen
            cursor = page.next_cursor

    assert walk() == [r.run_id for r in expected]
    by_offset = [
        r.run_id
        for offset in range(0, 18, 5)
        for r in store.runs.list_runs(
            RunQuery(limit=5, offset=offset, sort_by="updated_at", sort_order=order)
        ).items
    ]
    assert by_offset == [r.run_id for r in expected]
    for wanted in ("running", "paused", ("running", "failed"), ("succeeded", "queued")):
        names = {wanted} if isinstance(wanted, str) else set(wanted)
        page = store.runs.list_runs(RunQuery(status=wanted, sort_by="updated_at", sort_order=order))
        assert (
            [r.run_id for r in page.items]
            == [r.run_id for r in expected if r.status in names]
            == walk(status=wanted)
        )
        assert page.total == len(page.items) > 0
    none = store.runs.list_runs(RunQuery(status=(), sort_by="updated_at", sort_order=order))
    assert none.items == [] and none.total == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sort_by": "input_text"},
        {"sort_order": "up"},
        {"limit": 0},
        {"limit": 5000},
        {"offset": -1},
    ],
    ids=["sort-by", "sort-order", "limit-zero", "limit-huge", "offset-negative"],
)
def test_list_runs_rejects_bad_paging(store: Store, kwargs: dict[str, object]) -> None:
    """Bad sort or paging values are InvalidRequest, not a database error."""
    with pytest.raises(InvalidRequest):
        store.runs.list_runs(RunQuery(**kwargs))  # type: ignore[arg-type]


def test_trace_filter_by_event_type(store: Store) -> None:
    """list_trace narrows to one event type and keeps sequence order."""
    run_id = new_run(store)
    with store.transaction() as tx:
        tx.add_trace_events(
            run_id,
            [
                {"event_type": "a"},
                {"event_type": "b", "step_id": "s", "payload": {"x": 1}},
                {"event_type": "a"},
            ],
        )
    only_a = store.runs.list_trace(run_id, event_type="a")
    assert [e.sequence for e in only_a.items] == [1, 3] and only_a.total == 2
    b = store.runs.list_trace(run_id, event_type="b").items[0]
    assert (b.step_id, b.payload) == ("s", {"x": 1})


def test_audit_newest_first_filtered_and_redacted(store: Store, clock: ManualClock) -> None:
    """Audit events list newest first, filter by type and run, and never store secrets."""
    run_id = new_run(store)
    with store.transaction() as tx:
        first = tx.add_audit(
            "run.created",
            actor="alice",
            run_id=run_id,
            payload={"api_key": "sk-abcdefghijklmnop", "note": "ok"},
        )
    clock.advance(1)
    with store.transaction() as tx:
        tx.add_audit("human.decision", actor="bob", run_id=run_id, continuation_id="cont_1")
    with store.transaction() as tx:
        tx.add_audit("run.created", actor="carol")
    assert first.event_id.startswith("evt_")
    page = store.audit.list_audit()
    assert [e.actor for e in page.items] == ["carol", "bob", "alice"] and page.total == 3
    assert store.audit.list_audit(AuditQuery(event_type="run.created", run_id=run_id)).items == [
        store.audit.list_audit(AuditQuery(run_id=run_id)).items[-1]
    ]
    stored = store.audit.list_audit(AuditQuery(run_id=run_id)).items[-1]
    assert stored.payload == {"api_key": "[REDACTED]", "note": "ok"}
    assert (
        store.audit.list_audit(AuditQuery(continuation_id="cont_1")).items[0].event_type
        == "human.decision"
    )


def test_project_metadata_round_trip(store: Store) -> None:
    """Metadata values are JSON, upserted by key, listed by prefix and deletable."""
    assert store.metadata.get_metadata("env_policy:dev") is None
    assert store.metadata.get_metadata("env_policy:dev", {}) == {}
    with store.transaction() as tx:
        tx.set_metadata("env_policy:dev", {"allow": ["a"]})
    with store.transaction() as tx:  # upserted by a later transaction
        tx.set_metadata("env_policy:dev", {"allow": ["b"]})
        tx.set_metadata("env_policy:prod", [1, 2])
        tx.set_metadata("other", "x")
    assert store.metadata.get_metadata("env_policy:dev") == {"allow": ["b"]}
    assert store.metadata.list_metadata("env_policy:") == {
        "env_policy:dev": {"allow": ["b"]},
        "env_policy:prod": [1, 2],
    }
    with store.transaction() as tx:
        tx.set_metadata("other", {"y": 1})
    assert store.metadata.get_metadata("other") == {"y": 1}


def test_ping_succeeds(store: Store) -> None:
    """ping() is the readiness probe: it returns quietly while the database answers."""
    assert store.ping() is None
