"""``Worker``: poll, claim, heartbeat, execute, settle. Threads, no asyncio.

Used in-process by ``kneo service serve`` (one thread) and standalone by ``kneo worker``
(``--concurrency`` threads). ``run_once`` processes at most one record; tests drive it
directly.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import uuid
from typing import Any

from kneo.errors import IllegalTransition, KneoError, ResourceLocked
from kneo.redaction import redact_text
from kneo.store import TERMINAL_RUN_STATUSES

log = logging.getLogger("kneo_serv.worker")

#: After this many claims of one record (each a crash or lost lease) it is failed for good.
DEFAULT_MAX_ATTEMPTS = 5


class Worker:
    """Claims queue records for one platform manager; safe to run many per database."""

    def __init__(
        self,
        manager: Any,
        *,
        settings: Any = None,
        name: str = "worker",
        concurrency: int = 1,
        lease_seconds: float | None = None,
        poll_seconds: float | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> None:
        settings = settings if settings is not None else getattr(manager, "settings", None)
        self.manager = manager
        self.store = manager.store
        self.concurrency = max(1, concurrency)
        self.lease_seconds = float(
            lease_seconds or getattr(settings, "worker_lease_seconds", 60.0) or 60.0
        )
        self.poll_seconds = float(
            poll_seconds or getattr(settings, "worker_poll_seconds", 0.5) or 0.5
        )
        self.max_attempts = max_attempts
        self.owner = f"{name}:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self.processed = 0
        self._count_lock = threading.Lock()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start ``concurrency`` daemon threads that poll until :meth:`stop`."""
        if self._threads:
            return
        self._stop.clear()
        for index in range(self.concurrency):
            thread = threading.Thread(
                target=self._loop, name=f"kneo-worker-{index}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop claiming; wait up to ``timeout`` for runs in flight to reach their end."""
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout=timeout)
        self._threads = [t for t in self._threads if t.is_alive()]

    def is_alive(self) -> bool:
        return bool(self._threads) and all(t.is_alive() for t in self._threads)

    def notify(self) -> None:
        """Something was enqueued: skip the rest of the poll interval."""
        self._wake.set()

    def run_until_empty(self) -> int:
        """Process records until none is due (``kneo worker --once``); returns the count."""
        count = 0
        while not self._stop.is_set() and self.run_once():
            count += 1
        return count

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                worked = self.run_once()
            except Exception:  # the database blinked: log, back off, keep going
                log.exception("worker %s: claim failed", self.owner)
                worked = False
            if not worked:
                self._wake.wait(self.poll_seconds)
                self._wake.clear()

    # ------------------------------------------------------------------ one record

    def run_once(self) -> bool:
        """Claim and process one due record; ``False`` when nothing was due."""
        if self._stop.is_set():
            return False
        record = self.store.claim(self.owner, self.lease_seconds)
        if record is None:
            return False
        self._process(record)
        with self._count_lock:
            self.processed += 1
        return True

    def _process(self, record: Any) -> None:
        run = self.store.get_run(record.run_id)
        if run.status in TERMINAL_RUN_STATUSES or run.status in ("paused", "blocked"):
            # Cancelled while queued, or already executed by a worker that lost its lease
            # after finishing: nothing to do but settle the record.
            self.store.complete(record.queue_id, self.owner)
            return
        if run.cancel_requested:
            self._cancel(run.run_id)
            self.store.complete(record.queue_id, self.owner)
            return
        if record.attempts > self.max_attempts:
            self._give_up(record, f"gave up after {record.attempts - 1} lost leases")
            return
        # A queued run starts; a "running" one lost its worker mid-run and continues from
        # its last completed step boundary (completed steps never execute again).
        execute = self.manager.execute_run if run.status == "queued" else self.manager.continue_run
        heartbeat = _Heartbeat(self.store, record.queue_id, self.owner, self.lease_seconds)
        heartbeat.start()
        try:
            execute(record.run_id)
        except (ResourceLocked, IllegalTransition) as exc:
            # Someone else is executing it right now, or it moved on (cancelled, paused):
            # the run is in good hands; this record is done.
            heartbeat.stop()
            log.info("worker %s: run %s not executed here: %s", self.owner, record.run_id, exc.code)
            self.store.complete(record.queue_id, self.owner)
            return
        except KneoError as exc:
            heartbeat.stop()
            self.store.fail(
                record.queue_id, self.owner, {"type": exc.code, "message": redact_text(str(exc))}
            )
            log.warning("worker %s: run %s failed: %s", self.owner, record.run_id, exc.code)
            return
        except Exception as exc:
            heartbeat.stop()
            self.store.fail(
                record.queue_id,
                self.owner,
                {"type": type(exc).__name__, "message": redact_text(str(exc))[:500]},
            )
            log.exception("worker %s: run %s crashed", self.owner, record.run_id)
            return
        heartbeat.stop()
        if not self.store.complete(record.queue_id, self.owner):
            log.warning(
                "worker %s: lease on queue record %s was lost before completion",
                self.owner,
                record.queue_id,
            )

    def _cancel(self, run_id: str) -> None:
        cancel = getattr(self.manager, "cancel", None)
        if callable(cancel):
            with contextlib.suppress(KneoError):  # already terminal: nothing to cancel
                cancel(run_id)

    def _give_up(self, record: Any, message: str) -> None:
        self.store.fail(record.queue_id, self.owner, {"type": "too_many_attempts", "message": message})
        fail_run = getattr(self.manager, "fail_run", None)
        if callable(fail_run):
            fail_run(record.run_id, {"type": "too_many_attempts", "message": message})


class _Heartbeat:
    """Renews one lease every third of its length until stopped (or the lease is lost)."""

    def __init__(self, store: Any, queue_id: int, owner: str, lease_seconds: float) -> None:
        self._store = store
        self._queue_id = queue_id
        self._owner = owner
        self._lease = lease_seconds
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="kneo-lease", daemon=True)
        self.lost = False

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        self._thread.join(timeout=5)

    def _beat(self) -> None:
        while not self._done.wait(self._lease / 3):
            try:
                if not self._store.renew_lease(self._queue_id, self._owner, self._lease):
                    self.lost = True
                    log.warning("lease on queue record %s lost", self._queue_id)
                    return
            except Exception:
                log.exception("lease renewal failed for queue record %s", self._queue_id)
