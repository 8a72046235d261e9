"""``PlatformManager.start_worker`` (the library's worker, the tutorial's) runs the queue loop
of ``kneo worker``: a database outage gives the record back with the same backoff and never
completes it, a run that keeps meeting one fails after the attempt limit, and a claim the
database refuses does not end the loop. On a manual clock, with the worker's real thread."""

from __future__ import annotations

import functools
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from kneo.clock import ManualClock
from kneo.errors import DatabaseUnavailable
from tests.queue_records import queue_records

from .helpers import open_manager, wait_for


def _flaky(manager: Any, failures: int) -> list[str]:
    """Make the manager's next ``failures`` executions meet a database outage."""
    calls: list[str] = []
    real_execute, real_continue = manager.execute_run, manager.continue_run

    def outage(real: Any, run_id: str, **kwargs: Any) -> Any:
        calls.append(run_id)
        if len(calls) <= failures:
            raise DatabaseUnavailable("database unavailable: OperationalError: server closed")
        return real(run_id, **kwargs)

    manager.execute_run = functools.partial(outage, real_execute)
    manager.continue_run = functools.partial(outage, real_continue)
    return calls


def _record(manager: Any, run_id: str) -> Any:
    [record] = queue_records(manager.store, run_id)
    return record


def test_the_library_worker_backs_off_after_an_outage_and_finishes_the_run(
    project: Path, db_url: str
) -> None:
    clock = ManualClock()
    manager = open_manager(project, db_url, clock=clock)
    try:
        run_id = manager.start_run_from_spec(
            input_text="w1", spec_path=project / "three.yaml"
        ).run_id
        calls = _flaky(manager, failures=2)
        manager.start_worker(poll_seconds=0.02)
        for attempt, backoff in ((1, 1.0), (2, 2.0)):
            wait_for(
                lambda a=attempt: (
                    _record(manager, run_id).attempts == a
                    and _record(manager, run_id).lease_owner is None
                ),
                30,
                f"attempt {attempt} to be given back",
            )
            record = _record(manager, run_id)
            assert record.status == "queued"  # never completed, never failed
            assert record.available_at == clock.now() + timedelta(seconds=backoff)
            assert manager.store.runs.get_run(run_id).status == "queued"
            time.sleep(0.2)  # ten polls: not claimed again before its backoff
            assert _record(manager, run_id).attempts == attempt
            clock.advance(seconds=backoff)
        wait_for(
            lambda: manager.store.runs.get_run(run_id).status == "succeeded",
            30,
            "the run to finish",
        )
        assert manager.store.runs.get_run(run_id).output_text == "w1 1 2 3"
        wait_for(lambda: _record(manager, run_id).status == "completed", 30, "the record")
        assert _record(manager, run_id).attempts == 3 and len(calls) == 3
    finally:
        manager.stop_worker()
        manager.store.close()


def test_the_library_worker_gives_up_after_its_attempts(project: Path, db_url: str) -> None:
    clock = ManualClock()
    manager = open_manager(project, db_url, clock=clock)
    try:
        run_id = manager.start_run_from_spec(
            input_text="w2", spec_path=project / "three.yaml"
        ).run_id
        _flaky(manager, failures=100)
        manager.start_worker(poll_seconds=0.02, max_attempts=2)
        wait_for(lambda: _record(manager, run_id).attempts == 1, 30, "the first attempt")
        wait_for(lambda: _record(manager, run_id).lease_owner is None, 30, "the backoff")
        clock.advance(seconds=60)
        wait_for(lambda: _record(manager, run_id).status == "failed", 30, "the record to fail")
        run = manager.store.runs.get_run(run_id)
        assert run.status == "failed" and run.error["type"] == "database_unavailable"
        assert _record(manager, run_id).attempts == 2
    finally:
        manager.stop_worker()
        manager.store.close()


def test_the_library_worker_outlives_claims_the_database_refuses(
    project: Path, db_url: str
) -> None:
    """The database is down while the worker polls: the loop logs, waits and polls again
    (the loop it replaced died with its first refused claim)."""
    manager = open_manager(project, db_url)
    try:
        run_id = manager.start_run_from_spec(
            input_text="w3", spec_path=project / "three.yaml"
        ).run_id
        refused: list[int] = []
        real_claim = manager.store.queue.claim

        def claim(*args: Any, **kwargs: Any) -> Any:
            if len(refused) < 3:
                refused.append(1)
                raise DatabaseUnavailable("database unavailable: OperationalError: refused")
            return real_claim(*args, **kwargs)

        manager.store.queue.claim = claim
        manager.start_worker(poll_seconds=0.02)
        wait_for(
            lambda: manager.store.runs.get_run(run_id).status == "succeeded",
            30,
            "the run to finish",
        )
        assert len(refused) == 3
    finally:
        manager.stop_worker()
        manager.store.close()
