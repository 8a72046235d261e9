"""No accepted run is lost or stranded (issue item 5), rule by rule, on a manual clock:

* a worker that meets ``database_unavailable`` gives the record back with a backoff and
  never completes it; after its bounded attempts the run fails with that reason;
* a run left ``running`` with no live owner is found by the stranded-run sweep once its
  lease lapsed, queued, and continued from its last completed step;
* a run its process is still driving keeps its lease however long a step takes.
"""

from __future__ import annotations

import functools
import signal
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from kneo.clock import ManualClock
from kneo.errors import DatabaseUnavailable, ErrorCode, KneoError, NotReady, ProviderError
from kneo.store import AuditQuery
from kneo.worker import Worker
from tests import http_calls
from tests.queue_records import queue_records

from .helpers import env_for, open_manager, wait_for


def _flaky(manager: Any, failures: int, error: KneoError | None = None) -> list[str]:
    """Make the manager's next ``failures`` executions meet a database outage (or ``error``)."""
    calls: list[str] = []
    real_execute, real_continue = manager.execute_run, manager.continue_run

    def outage(real: Any, run_id: str, **kwargs: Any) -> Any:
        calls.append(run_id)
        if len(calls) <= failures:
            raise error or DatabaseUnavailable("database unavailable: OperationalError: closed")
        return real(run_id, **kwargs)

    manager.execute_run = functools.partial(outage, real_execute)
    manager.continue_run = functools.partial(outage, real_continue)
    return calls


def test_transient_database_error_retries_the_run_with_backoff(project: Path, db_url: str) -> None:
    clock = ManualClock()
    manager = open_manager(project, db_url, clock=clock)
    try:
        run_id = manager.start_run_from_spec(
            input_text="t1", spec_path=project / "three.yaml"
        ).run_id
        calls = _flaky(manager, failures=2)
        worker = Worker(manager, lease_seconds=30.0, max_attempts=5)
        for attempt, backoff in ((1, 1.0), (2, 2.0)):
            assert worker.run_once()
            [record] = queue_records(manager.store, run_id)
            assert (record.status, record.attempts) == ("queued", attempt)  # never completed
            assert record.available_at == clock.now() + timedelta(seconds=backoff)
            assert manager.store.runs.get_run(run_id).status == "queued"  # not failed
            assert not worker.run_once()  # not due before its backoff
            clock.advance(seconds=backoff)
        assert worker.run_once()
        run = manager.store.runs.get_run(run_id)
        assert run.status == "succeeded" and run.output_text == "t1 1 2 3"
        [record] = queue_records(manager.store, run_id)
        assert (record.status, record.attempts) == ("completed", 3) and len(calls) == 3
    finally:
        manager.store.close()


def test_a_run_that_keeps_meeting_outages_fails_with_that_reason(
    project: Path, db_url: str
) -> None:
    clock = ManualClock()
    manager = open_manager(project, db_url, clock=clock)
    try:
        run_id = manager.start_run_from_spec(
            input_text="t2", spec_path=project / "three.yaml"
        ).run_id
        _flaky(manager, failures=100)
        worker = Worker(manager, lease_seconds=30.0, max_attempts=3)
        for _ in range(3):
            assert worker.run_once()
            clock.advance(seconds=60)
        run = manager.store.runs.get_run(run_id)
        assert run.status == "failed" and run.error["type"] == "database_unavailable"
        [record] = queue_records(manager.store, run_id)
        assert record.status == "failed" and record.attempts == 3
    finally:
        manager.store.close()


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        (NotReady("the schema is newer than this Kneo", code=ErrorCode.schema_too_new), True),
        (ProviderError("the provider timed out", code=ErrorCode.provider_timeout), False),
    ],
    ids=["retryable-row", "permanent-row"],
)
def test_the_worker_reads_retryable_from_the_error_not_its_class(
    project: Path, db_url: str, error: KneoError, retried: bool
) -> None:
    """Transience is the code's row (``ErrorCode``), not ``DatabaseUnavailable`` alone: a
    retryable error gives the record back with the backoff, any other fails the run once."""
    clock = ManualClock()
    manager = open_manager(project, db_url, clock=clock)
    try:
        run_id = manager.start_run_from_spec(
            input_text="t3", spec_path=project / "three.yaml"
        ).run_id
        _flaky(manager, failures=1, error=error)
        assert Worker(manager, lease_seconds=30.0, max_attempts=5).run_once()
        [record] = queue_records(manager.store, run_id)
        run = manager.store.runs.get_run(run_id)
        if retried:
            assert (record.status, record.attempts, run.status) == ("queued", 1, "queued")
            assert record.available_at == clock.now() + timedelta(seconds=1.0)
        else:
            assert (record.status, run.status) == ("failed", "failed")
            assert run.error["type"] == "provider_timeout"
    finally:
        manager.store.close()


def _strand(manager: Any, run_id: str, owner: str) -> None:
    """What a cut-off synchronous request leaves: ``running``, its lease held by a process
    that no longer drives it, no queue record open."""
    record = manager.store.queue.claim("gone-worker", 1.0)
    assert record is not None and manager.store.queue.finish(record.queue_id, "gone-worker")
    with manager.store.transaction() as tx:
        tx.take_run_lease(run_id, owner, manager.lease_seconds)
        tx.update_run(run_id, status="running")


def test_stranded_run_is_found_after_its_lease_and_continued(project: Path, db_url: str) -> None:
    clock = ManualClock()
    manager = open_manager(project, db_url, clock=clock)
    try:
        run_id = manager.start_run_from_spec(
            input_text="s1x", spec_path=project / "three.yaml"
        ).run_id
        _strand(manager, run_id, "other-host:4242:cut-off")
        assert manager.recover_stranded_runs() == 0  # its lease has not lapsed yet
        clock.advance(seconds=manager.lease_seconds + 1)
        assert manager.recover_stranded_runs() == 1
        assert manager.recover_stranded_runs() == 0  # queued once: its record is open now
        events = [e.event_type for e in manager.store.runs.list_trace(run_id).items]
        assert events[-1] == "run_recovering"
        [audit] = manager.store.audit.list_audit(
            AuditQuery(event_type="run.stranded", run_id=run_id)
        ).items
        assert audit.actor == "system:sweeper" and audit.payload["action"] == "resume"
        assert Worker(manager, lease_seconds=30.0).run_once()
        run = manager.store.runs.get_run(run_id)
        assert run.status == "succeeded" and run.output_text == "s1x 1 2 3"
        units = run.state["units"]
        assert [units[s]["attempts"] for s in ("s1", "s2", "s3")] == [1, 1, 1]
    finally:
        manager.store.close()


def test_a_driven_run_keeps_its_lease_through_a_long_step(project: Path, db_url: str) -> None:
    """The lease is renewed by the process's lease keeper, not only at step boundaries: a
    step longer than the lease no longer makes a live run look stranded."""
    clock = ManualClock()
    manager = open_manager(project, db_url, clock=clock)
    try:
        run_id = manager.start_run_from_spec(
            input_text="k1", spec_path=project / "three.yaml"
        ).run_id
        with manager.store.transaction() as tx:
            tx.take_run_lease(run_id, manager.owner, manager.lease_seconds)
            tx.update_run(run_id, status="running")
        with manager.driver.leases.holding(run_id):
            for _ in range(4):  # four leases' worth of one step
                clock.advance(seconds=manager.lease_seconds * 0.6)
                assert manager.driver.leases.renew_all() == 1
            assert manager.store.queue.run_lease(run_id).owner == manager.owner
            assert manager.store.queue.stranded_runs(manager.lease_seconds) == []
    finally:
        manager.store.close()


def test_sigterm_with_a_hanging_request_exits_within_30_seconds(project: Path) -> None:
    """A synchronous run blocked in a step (a hung network call) cannot hold the process:
    requests get 10 s, the worker 10 s, and the process is gone 30 s after SIGTERM."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "service"))
    from svc_helpers import LiveServer

    db_url = (
        f"sqlite:///{project / '.kneo' / 'kneo_runs.sqlite'}"  # the bound is not the database's
    )
    env = env_for(project, db_url, KNEO_SERV_PROFILES_PATH=str(project / "profiles.json"))
    server = LiveServer(env, project, project / "server.log").start()
    hanging = threading.Thread(
        target=lambda: http_calls.post(
            f"{server.url}/v1/runs",
            json={"input": "hang block", "spec_path": "three.yaml"},
            timeout=120,
        ),
        daemon=True,
    )
    hanging.start()
    try:
        wait_for((project / "markers" / "hang").exists, 60, "the step to hang")
        assert server.proc is not None
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        server.proc.wait(timeout=45)
        assert time.monotonic() - started <= 31.0
    finally:
        server.stop()
