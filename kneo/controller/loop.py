"""The controller's loop: lead or stand by, and between passes do nothing but wait.

The leader runs a pass, then waits until the next ``interval`` or an earlier wake-up: a
commit to a watched local repository (:class:`~kneo.controller.watch.RepositoryWatcher`),
a reconcile request queued by any API replica (PostgreSQL ``LISTEN``, else a poll every
``poll_seconds``; see :mod:`kneo.store.coordination.controller_requests`), or an in-process
:meth:`~kneo.controller.controller.Controller.request_reconcile`. While it waits it renews
its lock every third of the lease, and nothing else touches the database.

A standby reads the lock every ``poll_seconds`` (or at once when the leader releases it and
notifies) and takes it when it is free: after the leader stops (``SIGTERM`` releases the lock)
at once, after it dies (``kill -9``) within ``lease_seconds + poll_seconds``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kneo.controller.watch import RepositoryWatcher

if TYPE_CHECKING:
    from kneo.controller.controller import Controller, ReconcileResult
    from kneo.store.coordination.controller_requests import ControllerWakeups

log = logging.getLogger("kneo.controller")

#: The longest a wait blocks before it looks at the stop flag again.
_STOP_CHECK_SECONDS = 0.5


class ControllerLoop:
    """One run of :meth:`Controller.run <kneo.controller.controller.Controller.run>`."""

    def __init__(
        self,
        controller: Controller,
        stop: threading.Event,
        *,
        on_result: Callable[[ReconcileResult], None] | None = None,
        watch: bool = True,
    ) -> None:
        self.controller = controller
        self.config = controller.config
        self.stop = stop
        self.on_result = on_result
        self.watch = watch
        self.watcher: Any = None

    def run(self) -> None:
        ctl = self.controller
        wakeups = self._start_wakeups()
        self._start_watcher()
        was_leader: bool | None = None
        try:
            while not self.stop.is_set():
                ctl.clear_wake()
                if ctl.is_leader or ctl.lock_free():
                    result = ctl.reconcile_once()
                else:
                    result = ctl.standing_by()
                self._refresh_watcher()
                if self.on_result is not None and (result.leader or was_leader is not False):
                    self.on_result(result)  # a standby reports once, not every poll
                was_leader = result.leader
                if result.leader:
                    self._idle()
                else:
                    self._wait(self.config.poll_seconds)
        finally:
            if self.watcher is not None:
                self.watcher.stop()
            if wakeups is not None:
                wakeups.stop()
            ctl.step_down()

    # ---------------------------------------------------------------- waiting

    def _idle(self) -> None:
        """Wait for the next pass as the leader: until ``interval`` has passed or a wake-up,
        renewing the lock every third of the lease (and leaving at once if it was lost)."""
        ctl = self.controller
        now = time.monotonic()
        deadline = now + self.config.interval
        renew_every = self.config.lease_seconds / 3
        next_renew = now + renew_every
        while not self.stop.is_set():
            now = time.monotonic()
            if now >= deadline:
                return
            if now >= next_renew:
                if not ctl.still_leader():
                    log.warning("lost the leader lock while idle; standing by")
                    return
                next_renew = now + renew_every
                self._refresh_watcher()
            if self._wait(min(deadline, next_renew) - now):
                return

    def _wait(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for a wake-up (``True``) or the stop flag."""
        deadline = time.monotonic() + seconds
        while not self.stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if self.controller.wait_for_wake(min(remaining, _STOP_CHECK_SECONDS)):
                return True
        return False

    # ---------------------------------------------------------------- wake-up sources

    def _start_wakeups(self) -> ControllerWakeups | None:
        """Queued requests and lock releases wake this loop (see the module docstring)."""
        try:
            return self.controller.store.controller.controller_wakeups(
                self.config.name,
                self.controller.request_reconcile,
                poll_seconds=self.config.poll_seconds,
            )
        except Exception as exc:  # the poll interval still works
            log.warning("cannot listen for reconcile requests: %s", exc)
            return None

    def _start_watcher(self) -> None:
        path = getattr(self.controller.source, "watch_path", None)
        if not self.watch or path is None:
            return

        self.watcher = RepositoryWatcher(path, self.controller)
        try:
            self.watcher.start()
        except Exception as exc:  # polling and webhooks still work
            log.warning("watching %s failed: %s", path, exc)

    def _refresh_watcher(self) -> None:
        """Re-arm the watcher on a repository that was deleted and created again."""
        if self.watcher is not None:
            try:
                self.watcher.refresh()
            except Exception as exc:
                log.warning("re-watching %s failed: %s", self.watcher.path, exc)
