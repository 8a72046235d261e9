"""Conformance: queue claims and leases, named locks, idempotency keys, callbacks seen."""

from __future__ import annotations

import multiprocessing
import threading
from collections import Counter
from datetime import timedelta

import pytest
import sqlalchemy as sa

from kneo.clock import ManualClock
from kneo.errors import IdempotencyConflict, InvalidRequest, NotFound
from kneo.store import Store, open_store
from kneo.store import tables as t
from tests.queue_records import queue_records, queue_stats

from .conftest import StoreFactory
from .helpers import new_run, process_context


def _fill_queue(store: Store, n: int) -> list[str]:
    run_ids = []
    with store.transaction() as tx:
        for i in range(n):
            run = tx.create_run(run_id=f"run_q{i:03d}", target="workflow", input_text="x")
            tx.enqueue(run.run_id)
            run_ids.append(run.run_id)
    return run_ids


def test_claim_is_fifo_and_counts_attempts(store: Store) -> None:
    """Claims hand out records oldest first, lease them and count attempts; None when empty."""
    assert store.queue.claim("w1", 30) is None
    runs = _fill_queue(store, 2)
    first = store.queue.claim("w1", 30)
    assert first is not None and first.run_id == runs[0]
    assert (first.status, first.attempts, first.lease_owner) == ("leased", 1, "w1")
    second = store.queue.claim("w2", 30)
    assert second is not None and second.run_id == runs[1]
    assert store.queue.claim("w3", 30) is None
    assert store.queue.finish(first.queue_id, "w1") is True
    assert store.queue.finish(second.queue_id, "w2", {"error": "boom"}) is True
    assert [r.status for r in queue_records(store, first.run_id)] == ["completed"]
    [failed] = queue_records(store, second.run_id)
    assert (failed.status, failed.error) == ("failed", {"error": "boom"})
    assert failed.finished_at is not None
    stats = queue_stats(store)
    assert stats == {"queued": 0, "leased": 0, "completed": 1, "failed": 1, "expired_leases": 0}


def test_expired_lease_is_reclaimed(store: Store, clock: ManualClock) -> None:
    """A lease that lapses (dead worker) is claimed again; the old owner can no longer finish."""
    _fill_queue(store, 1)
    held = store.queue.claim("dead", 10)
    assert held is not None
    assert store.queue.renew_lease(held.queue_id, "dead", 10) is True  # now expires at +10 s
    clock.advance(5)
    assert store.queue.claim("other", 10) is None
    clock.advance(6)
    assert queue_stats(store)["expired_leases"] == 1
    taken = store.queue.claim("other", 10)
    assert taken is not None and taken.queue_id == held.queue_id
    assert (taken.attempts, taken.lease_owner) == (2, "other")
    assert store.queue.finish(held.queue_id, "dead") is False
    assert store.queue.renew_lease(held.queue_id, "dead", 10) is False
    assert store.queue.finish(taken.queue_id, "other") is True


def test_release_puts_record_back(store: Store) -> None:
    """release() returns an unfinished lease to the queue for another worker."""
    _fill_queue(store, 1)
    held = store.queue.claim("w1", 30)
    assert held is not None and store.queue.release(held.queue_id, "w1") is True
    again = store.queue.claim("w2", 30)
    assert again is not None and again.queue_id == held.queue_id and again.attempts == 2


def test_queue_rejects_bad_lease(store: Store) -> None:
    """Zero leases are refused."""
    with pytest.raises(InvalidRequest):
        store.queue.claim("w", 0)


def test_threads_claim_each_record_exactly_once(store: Store) -> None:
    """Six threads draining 40 records: every record is claimed once, none is lost."""
    runs = _fill_queue(store, 40)
    claimed: list[str] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        while (record := store.queue.claim(name, 60)) is not None:
            with lock:
                claimed.append(record.run_id)
            store.queue.finish(record.queue_id, name)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(claimed) == runs
    assert queue_stats(store)["completed"] == 40


def _drain(url: str, name: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    store = open_store(url)
    got = []
    while (record := store.queue.claim(name, 60)) is not None:
        got.append(record.run_id)
        store.queue.finish(record.queue_id, name)
    store.close()
    out.put(got)


def test_processes_claim_each_record_exactly_once(store: Store, db_url: str) -> None:
    """Three worker processes on one database: every record is claimed exactly once."""
    runs = _fill_queue(store, 60)
    ctx = process_context()
    out = ctx.Queue()
    procs = [ctx.Process(target=_drain, args=(db_url, f"p{i}", out)) for i in range(3)]
    for p in procs:
        p.start()
    claimed = [run for _ in procs for run in out.get(timeout=60)]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    counts = Counter(claimed)
    assert sorted(counts) == runs and set(counts.values()) == {1}


def test_lock_exclusive_reentrant_and_expiring(store: Store, clock: ManualClock) -> None:
    """A lock has one owner; the owner may re-take it; it lapses after its ttl."""
    assert store.locks.acquire_lock("resume:cont_1", "a", 30) is True
    assert store.locks.acquire_lock("resume:cont_1", "b", 30) is False
    assert store.locks.acquire_lock("resume:cont_1", "a", 30) is True
    held = store.locks.get_lock("resume:cont_1")
    assert held is not None and held.owner == "a"
    assert store.locks.release_lock("resume:cont_1", "b") is False
    clock.advance(31)  # a died without releasing
    assert store.locks.get_lock("resume:cont_1") is None
    assert store.locks.renew_lock("resume:cont_1", "a", 30) is False
    assert store.locks.acquire_lock("resume:cont_1", "b", 30) is True
    assert store.locks.renew_lock("resume:cont_1", "b", 30) is True
    assert store.locks.release_lock("resume:cont_1", "b") is True
    assert store.locks.acquire_lock("resume:cont_1", "c", 30) is True


def _take_lease(store: Store, run_id: str, owner: str) -> None:
    with store.transaction() as tx:
        tx.take_run_lease(run_id, owner, 30)


def test_run_lease_renewed_by_its_holder_and_expiring(store: Store, clock: ManualClock) -> None:
    """A run's lease lives on its row: taken in a transaction, renewed and released by its
    holder only, lapsing after its ttl (a lapsed one is not renewed), and never a change of
    the run's version (the journal's compare-and-set)."""
    run_id = new_run(store)
    version = store.runs.get_run(run_id).version
    assert store.queue.run_lease(run_id) is None
    _take_lease(store, run_id, "a")
    assert store.queue.run_lease(run_id) == ("a", clock.now() + timedelta(seconds=30))
    assert store.queue.release_run_lease(run_id, "b") is False
    assert store.queue.renew_run_leases([run_id], "b", 30) == 0
    clock.advance(20)
    assert store.queue.renew_run_leases([run_id], "a", 30) == 1
    assert store.queue.run_lease(run_id) == ("a", clock.now() + timedelta(seconds=30))
    clock.advance(31)  # a died without releasing
    assert store.queue.run_lease(run_id) is None
    assert store.queue.renew_run_leases([run_id], "a", 30) == 0
    _take_lease(store, run_id, "b")
    clock.advance(20)
    assert store.queue.renew_run_leases([run_id], "b", 30) == 1
    assert store.queue.run_lease(run_id) == ("b", clock.now() + timedelta(seconds=30))
    assert store.queue.release_run_lease(run_id, "b") is True
    assert store.queue.run_lease(run_id) is None
    assert store.runs.get_run(run_id).version == version


def test_a_run_created_leased_keeps_its_lease_until_its_outcome(store: Store) -> None:
    """The create and outcome transactions set and clear the lease in the statements that
    write the run row; an outcome leaves a lease someone else took meanwhile alone."""
    with store.transaction() as tx:
        run = tx.create_run(target="workflow", input_text="x", status="running", lease=("me", 30))
    held = store.queue.run_lease(run.run_id)
    assert held is not None and held.owner == "me"
    with store.transaction() as tx:
        tx.finish_run(run, expected_version=1, release_lease="someone-else", status="failed")
    assert store.queue.run_lease(run.run_id) == held
    run = store.runs.get_run(run.run_id)
    with store.transaction() as tx:
        tx.finish_run(run, expected_version=2, release_lease="me", status="failed")
    assert store.queue.run_lease(run.run_id) is None
    with store.transaction() as tx:
        tx.take_run_lease(run.run_id, "next", 30)
    assert store.queue.run_lease(run.run_id).owner == "next"  # type: ignore[union-attr]


def test_concurrent_lock_acquire_has_one_winner(make_store: StoreFactory) -> None:
    """Eight threads (separate stores) racing for one lock: exactly one gets it."""
    stores = [make_store() for _ in range(8)]
    wins: list[bool] = []
    barrier = threading.Barrier(8)

    def take(i: int) -> None:
        barrier.wait()
        wins.append(stores[i].locks.acquire_lock("race", f"owner{i}", 30))

    threads = [threading.Thread(target=take, args=(i,)) for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert wins.count(True) == 1


def test_idempotency_replay_and_conflict(store: Store, clock: ManualClock) -> None:
    """Same key + same body replays the stored response; a different body is a conflict."""
    assert store.idempotency.begin_idempotent("resume", "k1", "h1").state == "new"
    assert store.idempotency.begin_idempotent("resume", "k1", "h1").state == "in_progress"
    store.idempotency.finish_idempotent("resume", "k1", (200, {"status": "succeeded"}))
    replay = store.idempotency.begin_idempotent("resume", "k1", "h1")
    assert (replay.state, replay.status_code, replay.response) == (
        "replay",
        200,
        {"status": "succeeded"},
    )
    with pytest.raises(IdempotencyConflict) as err:
        store.idempotency.begin_idempotent("resume", "k1", "h2")
    assert err.value.code == "idempotency_key_conflict"
    assert store.idempotency.begin_idempotent("other-scope", "k1", "h2").state == "new"
    with pytest.raises(NotFound):
        store.idempotency.finish_idempotent("resume", "never", (200, {}))


def test_idempotency_stale_and_released_claims(store: Store, clock: ManualClock) -> None:
    """An abandoned in-progress key is taken over after a while; released keys start fresh."""
    assert store.idempotency.begin_idempotent("s", "k", "h").state == "new"
    clock.advance(301)
    assert store.idempotency.begin_idempotent("s", "k", "h").state == "new"
    store.idempotency.finish_idempotent("s", "k", None)
    assert store.idempotency.begin_idempotent("s", "k", "other-body").state == "new"


def test_concurrent_first_use_of_a_key(make_store: StoreFactory) -> None:
    """Eight callers using one new key at once: exactly one owns it."""
    stores = [make_store() for _ in range(8)]
    states: list[str] = []
    barrier = threading.Barrier(8)

    def begin(i: int) -> None:
        barrier.wait()
        states.append(stores[i].idempotency.begin_idempotent("resume", "race", "h").state)

    threads = [threading.Thread(target=begin, args=(i,)) for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(states) == ["in_progress"] * 7 + ["new"]


def test_enqueue_and_records_for_run(store: Store) -> None:
    """A transaction's enqueue() writes the record the queue then holds."""
    run_id = new_run(store)
    with store.transaction() as tx:
        record = tx.enqueue(run_id)
    assert queue_records(store, run_id) == [record]


def test_one_statement_primitives_leave_pooled_connections_transactional(store: Store) -> None:
    """Claims, lease updates and ``get_run`` run outside a transaction on PostgreSQL
    (autocommit); the connections they used go back to the pool transactional: a failed
    transaction on any of them afterwards still rolls back whole."""
    run_ids = _fill_queue(store, 6)
    for run_id in run_ids:
        store.runs.get_run(run_id)
        record = store.queue.claim("w", 30)
        assert record is not None and store.queue.finish(record.queue_id, "w")
        with pytest.raises(RuntimeError), store.transaction() as tx:
            tx.create_run(target="workflow", input_text="rolled back")
            raise RuntimeError("boom")
    assert store.runs.list_runs().total == 6
    assert store.queue.claim("w", 30) is None


def test_a_callback_is_accepted_once_until_its_window_passes(
    make_store: StoreFactory, clock: ManualClock
) -> None:
    """``first_callback``: the first offer of a key wins, in this store and in another on the
    same database (another process, a restart); once its window has passed the row is gone
    (deleted as another key comes), so the table holds one window's keys."""
    store, other = make_store(), make_store()
    until = clock.now() + timedelta(seconds=600)
    assert store.idempotency.first_callback("a" * 64, until) is True
    assert store.idempotency.first_callback("a" * 64, until) is False
    assert other.idempotency.first_callback("a" * 64, until) is False  # another process sees it
    assert other.idempotency.first_callback("b" * 64, until + timedelta(seconds=60)) is True
    clock.advance(601)  # a's window has passed: the next offer deletes it, b stays
    assert store.idempotency.first_callback("c" * 64, clock.now() + timedelta(seconds=600)) is True
    seen = t.seen_callbacks
    with store.engine.connect() as conn:
        kept = set(conn.execute(sa.select(seen.c.key)).scalars())
    assert kept == {"b" * 64, "c" * 64}
    assert store.idempotency.first_callback("b" * 64, until) is False  # still within its window


def test_threads_offering_one_callback_accept_it_once(store: Store) -> None:
    """Eight threads offer the same key at once: exactly one is told it is the first."""
    until = store.clock.now() + timedelta(seconds=600)
    barrier = threading.Barrier(8)
    answers: list[bool] = []
    lock = threading.Lock()

    def offer() -> None:
        barrier.wait()
        first = store.idempotency.first_callback("d" * 64, until)
        with lock:
            answers.append(first)

    threads = [threading.Thread(target=offer) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(answers) == [False] * 7 + [True]
