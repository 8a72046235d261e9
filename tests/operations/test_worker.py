"""Worker rules: a record that exhausted its attempts fails its run through the lifecycle;
SIGTERM hands a run still in flight over at once instead of waiting for its lease."""

from __future__ import annotations

import signal
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from kneo.clock import ManualClock
from kneo.store import AuditQuery
from kneo.worker import Worker
from tests.queue_records import queue_records

from .helpers import Procs, env_for, open_manager, step_counts, wait_for


def test_exhausted_attempts_fail_the_run_with_a_reason(project: Path, db_url: str) -> None:
    clock = ManualClock()
    manager = open_manager(project, db_url, clock=clock)
    try:
        run_id = manager.start_run_from_spec(
            input_text="doomed", spec_path=project / "three.yaml"
        ).run_id
        for _ in range(3):  # three workers claim it and die
            assert manager.store.queue.claim("dead-worker", 1.0) is not None
            clock.advance(seconds=2)
        worker = Worker(manager, lease_seconds=1.0, max_attempts=3)
        assert worker.run_once()
        run = manager.store.runs.get_run(run_id)
        assert run.status == "failed" and run.error is not None
        assert run.error["type"] == "too_many_attempts" and run.error["attempts"] == 4
        [record] = queue_records(manager.store, run_id)
        assert record.status == "failed" and record.error["type"] == "too_many_attempts"
        events = [e.event_type for e in manager.store.runs.list_trace(run_id).items]
        assert events[-1] == "run_failed"
        audit = manager.store.audit.list_audit(
            AuditQuery(event_type="run.failed", run_id=run_id)
        ).items
        assert len(audit) == 1 and audit[0].payload["reason"] == "too_many_attempts"
        assert step_counts(project)[("doomed", "s1")] == 0
        # still continuable by an operator from its last boundary
        assert manager.continue_run(run_id).status == "succeeded"
    finally:
        manager.store.close()


def test_sigterm_hands_over_in_flight_run(project: Path, db_url: str, procs: Procs) -> None:
    env = env_for(
        project, db_url, KNEO_SERV_WORKER_LEASE_SECONDS="120", KNEO_SERV_WORKER_POLL_SECONDS="0.05"
    )
    manager = open_manager(project, db_url)
    try:
        run_id = manager.start_run_from_spec(
            input_text="handover block", spec_path=project / "five.yaml"
        ).run_id
        first = procs.worker(project, env, "--grace-seconds", "0.5")
        wait_for((project / "markers" / "handover").exists, 60, "step 3 to start")
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=20) == 0
        [record] = queue_records(manager.store, run_id)
        assert record.status == "queued" and record.lease_owner is None  # released, not held
        started = time.monotonic()
        procs.worker(project, env)
        wait_for(
            lambda: manager.store.runs.get_run(run_id).status == "succeeded",
            60,
            "the second worker to finish the handed-over run",
        )
        assert time.monotonic() - started < 60  # far below the 120 s lease
        counts = step_counts(project)
        assert [counts[("handover", s)] for s in ("s1", "s2", "s3", "s4", "s5")] == [1, 1, 2, 1, 1]
    finally:
        manager.store.close()


def test_run_held_on_another_host_is_rechecked_when_its_lock_lapses(
    project: Path, db_url: str
) -> None:
    """A running run whose lock belongs to a process on another host (whose death cannot be
    seen from here) is not forgotten: the worker re-queues it for when the lock lapses."""
    clock = ManualClock()
    manager = open_manager(project, db_url, clock=clock)
    try:
        run_id = manager.start_run_from_spec(
            input_text="remote", spec_path=project / "three.yaml"
        ).run_id
        with manager.store.transaction() as tx:
            tx.take_run_lease(run_id, "other-host:4242:dead", 30)
            tx.update_run(run_id, status="running")
        worker = Worker(manager, lease_seconds=10.0, poll_seconds=0.5)
        assert worker.run_once()
        first, second = queue_records(manager.store, run_id)
        assert first.status == "completed" and second.status == "queued"
        assert second.available_at == clock.now() + timedelta(seconds=30)
        assert not worker.run_once()  # not due yet
        clock.advance(seconds=31)
        assert worker.run_once()
        run = manager.store.runs.get_run(run_id)
        assert run.status == "succeeded" and run.output_text == "remote 1 2 3"
    finally:
        manager.store.close()


def test_one_thread_keeps_every_claimed_record_leased_while_its_run_executes(
    project: Path, db_url: str
) -> None:
    """A claimed record stays leased however long its run takes: the worker renews every
    record in flight from one thread (none started per record), so no other worker claims a
    run that is still executing."""
    clock = ManualClock()
    manager = open_manager(project, db_url, clock=clock)
    go = threading.Event()
    execute = manager.execute_run

    def held(run_id: str, **kwargs: Any) -> Any:
        go.wait(60)
        return execute(run_id, **kwargs)

    manager.execute_run = held
    worker = Worker(manager, concurrency=2, lease_seconds=0.3, poll_seconds=0.02)
    try:
        run_ids = [
            manager.start_run_from_spec(
                input_text=f"kept {n}", spec_path=project / "three.yaml"
            ).run_id
            for n in (1, 2)
        ]
        before = set(threading.enumerate())  # other tests' keepers may linger: count ours
        worker.start()
        wait_for(lambda: len(worker.in_flight()) == 2, 30, "both runs to be claimed")
        for _ in range(5):  # five times the lease, renewed after each step shorter than it
            clock.advance(seconds=0.2)
            wait_for(
                lambda: all(
                    record.lease_expires_at == clock.now() + timedelta(seconds=0.3)
                    for run_id in run_ids
                    for record in queue_records(manager.store, run_id)
                ),
                30,
                "both leases to be renewed",
            )
        names = [thread.name for thread in threading.enumerate() if thread not in before]
        assert names.count("kneo-queue-leases") == 1 and "kneo-lease" not in names
        assert sorted(worker.in_flight()) == sorted(run_ids)  # nobody else claimed them
        go.set()
        wait_for(lambda: worker.processed == 2, 30, "both runs to finish")
        for run_id in run_ids:
            [record] = queue_records(manager.store, run_id)
            assert record.status == "completed" and record.attempts == 1
            assert manager.store.runs.get_run(run_id).status == "succeeded"
    finally:
        go.set()
        worker.stop()
        manager.store.close()
