"""``Worker``: poll, claim, heartbeat, execute, settle. Threads, no asyncio.

The one queue loop of Kneo, so every way of executing queued runs retries, backs off and
gives up alike: ``kneo worker`` (``--concurrency`` threads, :mod:`kneo.worker`), the
service's in-process worker (one thread) and :meth:`PlatformManager.start_worker` (the
library's, one thread) all run it. It sits in the application layer, below the edges that
start it, and needs of the platform only :class:`WorkerPlatform`. ``run_once`` processes at
most one record; tests drive it directly. The claim is every project's: each record is
executed, continued, cancelled or failed through its own project's manager
(:class:`~kneo.platform.directory.ProjectDirectory`). A decision of this process may give an
idle thread a record it claimed for this worker in its own transaction (:meth:`Worker.give`,
:mod:`kneo.platform.handoff`): run before the next claim, settled like any claimed record.

How a claimed record is settled, by what happened:

=============================================  ============================================
outcome                                        record / run
=============================================  ============================================
run reached an outcome (succeeded, paused...)  ``completed``
run already terminal, paused or cancelled      ``completed`` (nothing to do)
another process holds the run's lock           ``completed`` + a new record due when the
                                               lock lapses (holder dead on another host)
its project is at ``max_running_runs``         ``completed`` + a new record due after a poll;
                                               the claim skips the project while it is full
run changed under us (``stale_state``)         released: claimed again at once, re-evaluated
retryable error (a database outage)            released, due again after a backoff (1, 2, 4
                                               ... s, at most 30 s); never completed; after
                                               ``max_attempts`` claims the run is failed
permanent error (spec no longer compiles...)   ``failed``; run ``failed`` with the reason
unexpected error (a bug, a dead process...)    lease left to lapse: retried after the lease
claimed more than ``max_attempts`` times       ``failed``; run ``failed`` (too_many_attempts)
graceful stop with the run still in flight     lease and run lock released: another worker
                                               continues from the last step boundary
=============================================  ============================================
"""

from __future__ import annotations

import collections
import contextlib
import functools
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

from kneo import metrics
from kneo.errors import (
    Conflict,
    IllegalTransition,
    KneoError,
    NotFound,
    ProjectLimitReached,
    ResourceLocked,
)
from kneo.lifecycle import RunStatus, phase_of, transition
from kneo.logs import get_logger
from kneo.periodic import PeriodicTask
from kneo.platform.directory import ProjectDirectory, ProjectSlots
from kneo.platform.journal import checkpoint_payload
from kneo.platform.leases import LeaseKeeper
from kneo.platform.results import RunResult
from kneo.platform.sweeper import Sweeper, SweptPlatform, start_sweeper
from kneo.redaction import redact_text
from kneo.settings import Settings
from kneo.store import TERMINAL_RUN_STATUSES, QueueRecord, RunRecord

if TYPE_CHECKING:
    from kneo.store.api import Store


log = get_logger("kneo_serv.worker")

#: After this many claims of one record (each a crash, lost lease or database outage) it is
#: failed for good.
DEFAULT_MAX_ATTEMPTS = 5
#: Backoff before a run that met a database outage is tried again: 1, 2, 4 ... seconds.
RETRY_BASE_SECONDS = 1.0
RETRY_MAX_SECONDS = 30.0
#: what executes a claimed record's run (given its id) to an outcome
Execute = Callable[[str], RunResult]


def retry_delay(attempt: int) -> float:
    """Seconds before attempt ``attempt + 1`` of a record whose run met a transient error."""
    return float(min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2.0 ** max(0, attempt - 1)))


class WorkerPlatform(SweptPlatform, Protocol):
    """What a :class:`Worker` needs of a platform (``PlatformManager`` is one)."""

    @property
    def settings(self) -> Settings: ...

    def execute_run(self, run_id: str, *, run: RunRecord | None = None) -> RunResult: ...

    def continue_run(
        self,
        run_id: str,
        *,
        actor: str | None = None,
        hand_off: bool | None = None,
        run: RunRecord | None = None,
    ) -> RunResult: ...

    def cancel(self, run_id: str, *, actor: str | None = None) -> RunResult: ...

    def for_project(self, name: str) -> Any: ...


class Worker:
    """Claims the queue records of every project of the manager's database, and executes
    each through its project's manager; safe to run many per database."""

    def __init__(
        self,
        manager: WorkerPlatform,
        *,
        settings: Settings | None = None,
        name: str = "worker",
        concurrency: int = 1,
        lease_seconds: float | None = None,
        poll_seconds: float | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> None:
        settings = settings if settings is not None else manager.settings
        self.manager = manager
        self._settings = settings
        self._sweeper: Sweeper | None = None
        self._housekeeping: PeriodicTask | None = None
        self.store = manager.store
        self.concurrency = max(1, concurrency)
        self.lease_seconds = float(lease_seconds or settings.worker_lease_seconds or 60.0)
        self.poll_seconds = float(poll_seconds or settings.worker_poll_seconds or 0.5)
        self.max_attempts = max(1, max_attempts)
        self.owner = f"{name}:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        #: claimed records, each with the owner of its run's lease (its project's manager's)
        self._inflight: dict[int, tuple[QueueRecord, str]] = {}
        #: records a decision of this process claimed for this worker (:meth:`give`), not
        #: yet started, and how many threads wait for work
        self._given: collections.deque[tuple[QueueRecord, str, Execute]] = collections.deque()
        self._idle = 0
        #: the projects whose records this worker claims and executes (kneo.platform.directory)
        self.directory = ProjectDirectory(manager)
        self._slots = ProjectSlots(self.directory, self.store, refresh=self.poll_seconds)
        # every claimed record's lease renewed every third of its length, on one thread
        self._leases = LeaseKeeper("kneo-queue-leases", self.lease_seconds / 3, self._renew)
        self._lock = threading.Lock()
        self.processed = 0
        #: stops this worker's wake-up on a queued run (kneo.store.coordination.wakeups)
        self._unsubscribe: Callable[[], None] | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start ``concurrency`` daemon threads that poll until :meth:`stop`."""
        if self._threads:
            return
        self._stop.clear()
        # Timeout sweeps (KNEO_SERV_SWEEP_INTERVAL_SECONDS; off when unset).
        self._sweeper = start_sweeper(self.manager, self._settings, directory=self.directory)
        self._housekeeping = self.store.start_background_work()
        # woken when a run is queued: here at once, elsewhere by NOTIFY (PostgreSQL)
        self._unsubscribe = self.store.wakeups.on_queued(self.notify)
        self.store.wakeups.start()
        for index in range(self.concurrency):
            thread = threading.Thread(target=self._loop, name=f"kneo-worker-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 30.0) -> list[str]:
        """Stop claiming and wait up to ``timeout`` seconds for runs in flight to finish.

        Runs still executing after that are handed over rather than held hostage until the
        process dies: their lease and run lock are released, so another worker claims the
        record at once and continues from the last completed step boundary. Returns the ids
        of the runs handed over.
        """
        self._stop.set()
        self._wake.set()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._sweeper is not None:
            self._sweeper.stop()
            self._sweeper = None
        if self._housekeeping is not None:
            self._housekeeping.stop()
            self._housekeeping = None
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        self._threads = [t for t in self._threads if t.is_alive()]
        self._leases.stop()  # what is still in flight is handed over: its leases released
        return self._hand_over()

    def is_alive(self) -> bool:
        return bool(self._threads) and all(t.is_alive() for t in self._threads)

    def notify(self) -> None:
        """Something was enqueued: skip the rest of the poll interval."""
        self._wake.set()

    def idle(self) -> bool:
        """Whether a thread waits for work that no given record is promised to yet
        (:class:`~kneo.platform.handoff.LocalWorker`)."""
        with self._lock:
            return not self._stop.is_set() and self._idle > len(self._given)

    def give(self, record: QueueRecord, lease_owner: str, execute: Execute) -> None:
        """Execute ``record``, claimed for this worker in a decision's committed transaction,
        on the next free thread: ``execute`` drives its run (whose lease ``lease_owner``
        holds), settled as a claimed record is. Given while stopping, it is handed over."""
        with self._lock:
            self._given.append((record, lease_owner, execute))
        self._wake.set()

    def in_flight(self) -> list[str]:
        """Run ids this worker is executing right now."""
        with self._lock:
            return [record.run_id for record, _ in self._inflight.values()]

    def run_until_empty(self) -> int:
        """Process records until none is due (``kneo worker --once``); returns the count."""
        count = 0
        while not self._stop.is_set() and self.run_once():
            count += 1
        return count

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                worked = self._run_given() or self.run_once()
            except Exception:  # the database blinked: log, back off, keep going
                log.exception("worker %s: claim failed", self.owner)
                worked = False
            if not worked:
                with self._lock:
                    self._idle += 1
                    waiting = not self._given
                if waiting:
                    self._wake.wait(self.poll_seconds)
                    self._wake.clear()
                with self._lock:
                    self._idle -= 1

    def _run_given(self) -> bool:
        """Execute the oldest record given to this worker (:meth:`give`), if any."""
        with self._lock:
            if not self._given or self._stop.is_set():
                return False
            record, lease_owner, execute = self._given.popleft()
        self._run(self.directory.manager(record.project_id), record, lease_owner, execute)
        with self._lock:
            self.processed += 1
        return True

    def _hand_over(self) -> list[str]:
        with self._lock:
            records = [*self._inflight.values(), *((r, o) for r, o, _ in self._given)]
            self._inflight.clear()
            self._given.clear()
        handed: list[str] = []
        for record, lease_owner in records:
            with contextlib.suppress(Exception):  # best effort: the lease lapses anyway
                self.store.queue.release(record.queue_id, self.owner)
                self.store.queue.release_run_lease(record.run_id, lease_owner)
            handed.append(record.run_id)
            log.warning(
                "worker %s: handed over run %s still in flight at shutdown",
                self.owner,
                record.run_id,
            )
        return handed

    def _renew(self, queue_ids: list[int]) -> int:
        """Extend the leases on ``queue_ids``; a lost one (it lapsed and another worker
        claimed the record) is logged, and its run's next step boundary finds the run's own
        lease taken."""
        renewed = 0
        for queue_id in queue_ids:
            if self.store.queue.renew_lease(queue_id, self.owner, self.lease_seconds):
                renewed += 1
            else:
                log.warning("lease on queue record %s lost", queue_id)
        return renewed

    # ------------------------------------------------------------------ one record

    def run_once(self) -> bool:
        """Claim and process one due record; ``False`` when nothing was due."""
        if self._stop.is_set():
            return False
        full = self._slots.excluded()  # projects at their max_running_runs (usually none)
        record = self.store.queue.claim(self.owner, self.lease_seconds, excluded_projects=full)
        if record is None:
            return False
        self._process(record)
        with self._lock:
            self.processed += 1
        return True

    def _process(self, record: QueueRecord) -> None:
        try:  # the record's project's manager (the claim is every project's)
            manager: WorkerPlatform = self.directory.manager(record.project_id)
            run = manager.store.runs.get_run(record.run_id)
        except NotFound as exc:  # the run, or its project (archived since)
            self.store.queue.finish(
                record.queue_id,
                self.owner,
                {"type": exc.code, "message": f"run {record.run_id} is gone: {exc}"},
            )
            return
        if run.status in TERMINAL_RUN_STATUSES or run.status in ("paused", "blocked"):
            # Cancelled while queued, or already executed by a worker that lost its lease
            # after finishing: nothing to do but settle the record.
            self.store.queue.finish(record.queue_id, self.owner)
            return
        if run.cancel_requested:
            self._cancel(manager, run.run_id)
            self.store.queue.finish(record.queue_id, self.owner)
            return
        if record.attempts > self.max_attempts:
            self._give_up(
                manager,
                record,
                "too_many_attempts",
                f"queue record claimed {record.attempts} times (max "
                f"{self.max_attempts}); its workers kept dying or losing the lease",
            )
            return
        # A queued run starts; a "running" one was handed to the workers by a decision or a
        # continue, or lost its worker mid-run: it continues here from its last completed step
        # boundary (completed steps never execute again), never handed on again.
        execute = (
            functools.partial(manager.execute_run, run=run)
            if run.status == "queued"
            else functools.partial(manager.continue_run, hand_off=False, run=run)
        )
        self._run(manager, record, manager.owner, execute)

    def _run(
        self, manager: WorkerPlatform, record: QueueRecord, lease_owner: str, execute: Execute
    ) -> None:
        """Execute a claimed record's run, its lease renewed meanwhile, and settle it."""
        with self._lock:
            self._inflight[record.queue_id] = (record, lease_owner)
        try:
            with self._leases.holding(record.queue_id):
                self._execute(manager, record, execute)
        finally:
            with self._lock:
                self._inflight.pop(record.queue_id, None)
            self._slots.ended(record.project_id)

    def _execute(self, manager: WorkerPlatform, record: QueueRecord, execute: Execute) -> None:
        try:
            outcome = execute(record.run_id)
        except ProjectLimitReached:
            # Its project is at max_running_runs (counted in the start's transaction): the
            # run waits, unchanged, and the claim skips the project until a slot is free.
            self._slots.full(record.project_id)
            self._recheck_later(manager, record, why="its project is at max_running_runs")
        except ResourceLocked:
            # Another process holds the run (alive, or on another host so its death cannot
            # be seen from here): look again when its lock lapses, so a run whose holder
            # died on another machine is still continued rather than forgotten.
            self._recheck_later(manager, record)
        except IllegalTransition as exc:
            # It moved on (cancelled, paused, finished): nothing left for this record.
            log.info("worker %s: run %s not executed here: %s", self.owner, record.run_id, exc.code)
            self._settle(record)
        except Conflict as exc:
            # Written concurrently (a handed-over worker committed a last boundary): give the
            # record back so it is re-evaluated against the run's new state.
            log.info(
                "worker %s: run %s changed under us (%s); re-queued",
                self.owner,
                record.run_id,
                exc.code,
            )
            self.store.queue.release(record.queue_id, self.owner)
        except KneoError as exc:
            if not exc.retryable:
                # Permanent (the stored spec no longer compiles, ...): retrying cannot help.
                self._give_up(manager, record, exc.code, redact_text(str(exc))[:500])
                return
            # Transient (a database outage): the run is intact at its last committed boundary.
            # Try again later (a release the database refuses too leaves the lease to lapse).
            if record.attempts >= self.max_attempts:
                self._give_up(manager, record, exc.code, redact_text(str(exc))[:500])
                return
            delay = retry_delay(record.attempts)
            log.warning(
                "worker %s: run %s: %s; retrying in %.0fs (attempt %s of %s)",
                self.owner,
                record.run_id,
                exc.code,
                delay,
                record.attempts,
                self.max_attempts,
            )
            with contextlib.suppress(KneoError):
                self.store.queue.release(record.queue_id, self.owner, delay_seconds=delay)
        except Exception as exc:
            log.exception(
                "worker %s: run %s crashed (attempt %s)", self.owner, record.run_id, record.attempts
            )
            if record.attempts >= self.max_attempts:
                self._give_up(manager, record, type(exc).__name__, redact_text(str(exc))[:500])
            # else: stop renewing; the lease lapses and a worker retries from the last boundary
        else:
            # paused or ended: whoever waits for it (a decision's answer) reads it now, not
            # after the record is settled too
            self.store.wakeups.moved(record.run_id, outcome)
            self._settle(record)

    def _recheck_later(
        self, manager: WorkerPlatform, record: QueueRecord, *, why: str | None = None
    ) -> None:
        """Queue the run again (a new record, due after a poll or when its holder's lease
        lapses) and settle this one."""
        holder = self.store.queue.run_lease(record.run_id) if why is None else None
        with manager.store.transaction() as tx:
            floor = tx.now + timedelta(seconds=self.poll_seconds)
            at = max(holder.expires_at, floor) if holder is not None else floor
            tx.enqueue(record.run_id, available_at=at)
        log.info(
            "worker %s: run %s %s; re-checking at %s",
            self.owner,
            record.run_id,
            why or f"is held by {holder.owner if holder else 'nobody'}",
            at.isoformat(),
        )
        self._settle(record)

    def _settle(self, record: QueueRecord) -> None:
        if not self.store.queue.finish(record.queue_id, self.owner):
            log.warning(
                "worker %s: lease on queue record %s was lost before completion",
                self.owner,
                record.queue_id,
            )

    def _cancel(self, manager: WorkerPlatform, run_id: str) -> None:
        with contextlib.suppress(KneoError):  # already terminal: nothing to cancel
            manager.cancel(run_id)

    def _give_up(
        self, manager: WorkerPlatform, record: QueueRecord, kind: str, message: str
    ) -> None:
        """Fail the run, then its record, so nobody waits for a run no worker will finish.

        The run first: a worker that dies between the two leaves a record whose lease runs
        out and whose next claim finds the run terminal, never a failed record beside a run
        that still says queued (which a reader of the record saw, on a busy machine).
        """
        error = {
            "type": kind,
            "message": message,
            "queue_id": record.queue_id,
            "attempts": record.attempts,
        }
        try:
            fail_run(manager.store, record.run_id, error, actor=self.owner)
        except KneoError as exc:  # it reached an outcome meanwhile: keep that
            log.info("worker %s: run %s not marked failed: %s", self.owner, record.run_id, exc.code)
        self.store.wakeups.moved(record.run_id)
        self.store.queue.finish(record.queue_id, self.owner, error)
        log.warning("worker %s: run %s failed: %s", self.owner, record.run_id, kind)


def fail_run(
    store: Store, run_id: str, error: dict[str, Any], *, actor: str | None = None
) -> RunRecord:
    """Mark ``run_id`` failed through the lifecycle, with ``error`` as the reason.

    One transaction, a compare-and-set on the run's version: status (via
    :func:`~kneo.lifecycle.transition`, so a terminal run is refused with
    ``illegal_transition``), error, trace event, checkpoint and audit event together. The
    run's state is kept, so ``continue_run`` can still pick it up from its last boundary.
    """
    run = store.runs.get_run(run_id)
    status = transition(phase_of(run), RunStatus.FAILED, action="fail the run")
    with store.transaction() as tx:
        updated = tx.update_run(
            run_id, expected_version=run.version, status=status, error=error, finished_at=tx.now
        )
        tx.add_trace_events(run_id, [{"event_type": "run_failed", "payload": error}])
        tx.add_checkpoint(
            run_id,
            type="run_failed",
            status=status,
            payload=checkpoint_payload(run.state or {}),
            metadata={"reason": error.get("type")},
        )
        tx.add_audit(
            "run.failed",
            actor=actor,
            run_id=run_id,
            payload={
                "previous_status": run.status,
                "reason": error.get("type"),
                "environment": run.environment,
                "workflow": run.workflow_name,
            },
        )
    metrics.record_run(
        updated.status, updated.started_at, updated.finished_at, project=store.project
    )
    return updated
