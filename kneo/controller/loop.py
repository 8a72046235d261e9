"""The controller's loop: lead or stand by, and between passes do nothing but wait.

The leader runs a pass, then waits until the next ``interval`` or an earlier wake-up: a
commit to a watched local repository (:class:`~kneo.controller.watch.RepositoryWatcher`),
a reconcile request queued by any API replica (PostgreSQL ``LISTEN``, else a poll every
``poll_seconds``; see :mod:`kneo.store.coordination.controller_requests`), or an in-process
:meth:`~kneo.controller.controller.Controller.request_reconcile`. While it waits it renews
its lock every third of the lease, and nothing else touches the database.

What the loop runs is a :class:`Reconciler`: one :class:`~kneo.controller.controller.
Controller` (one source), or :class:`~kneo.controller.projects.ProjectControllers` (every
project's source, each on its own interval; a pass runs the sources that are due or woken).

A standby reads the lock every ``poll_seconds`` (or at once when the leader releases it and
notifies) and takes it when it is free: after the leader stops (``SIGTERM`` releases the lock)
at once, after it dies (``kill -9``) within ``lease_seconds + poll_seconds``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from kneo.controller.watch import RepositoryWatcher, Triggerable

if TYPE_CHECKING:
    from kneo.controller.config import ControllerConfig
    from kneo.controller.controller import ReconcileResult


class Stoppable(Protocol):
    def stop(self, timeout: float = ...) -> None: ...


class Reconciler(Protocol):
    """What the loop runs: leadership, passes, and what wakes it."""

    @property
    def config(self) -> ControllerConfig:
        """Its lease and its standby poll."""
        ...

    @property
    def is_leader(self) -> bool: ...

    def lock_free(self) -> bool: ...
    def reconcile_due(self) -> list[ReconcileResult]:
        """One pass as the leader (or the one result of standing by)."""
        ...

    def standing_by(self) -> ReconcileResult: ...
    def still_leader(self) -> bool: ...
    def step_down(self) -> None: ...
    def clear_wake(self) -> None: ...
    def wait_for_wake(self, seconds: float) -> bool: ...
    def idle_seconds(self) -> float:
        """How long the leader waits for the next pass when nothing wakes it."""
        ...

    def start_wakeups(self) -> Stoppable | None: ...
    def watch_targets(self) -> dict[str, tuple[Path, Triggerable]]:
        """The local repositories to watch, by key, with what a commit there wakes."""
        ...


log = logging.getLogger("kneo.controller")

#: The longest a wait blocks before it looks at the stop flag again.
_STOP_CHECK_SECONDS = 0.5


class ControllerLoop:
    """One run of :meth:`Controller.run <kneo.controller.controller.Controller.run>` (or of
    :meth:`ProjectControllers.run <kneo.controller.projects.ProjectControllers.run>`)."""

    def __init__(
        self,
        controller: Reconciler,
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
        #: the watchers of local repositories, by :meth:`Reconciler.watch_targets` key
        self.watchers: dict[str, RepositoryWatcher] = {}

    def run(self) -> None:
        ctl = self.controller
        wakeups = self._start_wakeups()
        self._refresh_watchers()
        was_leader: bool | None = None
        try:
            while not self.stop.is_set():
                ctl.clear_wake()
                if ctl.is_leader or ctl.lock_free():
                    results = ctl.reconcile_due()
                else:
                    results = [ctl.standing_by()]
                self._refresh_watchers()
                leader = results[0].leader if results else ctl.is_leader
                for result in results:
                    if self.on_result is not None and (leader or was_leader is not False):
                        self.on_result(result)  # a standby reports once, not every poll
                was_leader = leader
                if leader:
                    self._idle()
                else:
                    self._wait(self.config.poll_seconds)
        finally:
            for watcher in self.watchers.values():
                watcher.stop()
            if wakeups is not None:
                wakeups.stop()
            ctl.step_down()

    # ---------------------------------------------------------------- waiting

    def _idle(self) -> None:
        """Wait for the next pass as the leader: until ``interval`` has passed or a wake-up,
        renewing the lock every third of the lease (and leaving at once if it was lost)."""
        ctl = self.controller
        now = time.monotonic()
        deadline = now + ctl.idle_seconds()
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
                self._refresh_watchers()
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

    def _start_wakeups(self) -> Stoppable | None:
        """Queued requests and lock releases wake this loop (see the module docstring)."""
        try:
            return self.controller.start_wakeups()
        except Exception as exc:  # the poll interval still works
            log.warning("cannot listen for reconcile requests: %s", exc)
            return None

    def _refresh_watchers(self) -> None:
        """Watch the local repositories of the sources there are now, and re-arm a watcher
        on a repository that was deleted and created again."""
        if not self.watch:
            return
        targets = self.controller.watch_targets()
        for key in [k for k in self.watchers if k not in targets]:
            self.watchers.pop(key).stop()
        for key, (path, woken) in targets.items():
            watcher = self.watchers.get(key)
            if watcher is not None and watcher.controller is not woken:  # a new source
                self.watchers.pop(key).stop()
                watcher = None
            try:
                if watcher is None:
                    self.watchers[key] = watcher = RepositoryWatcher(path, woken)
                    watcher.start()
                else:
                    watcher.refresh()
            except Exception as exc:  # polling and webhooks still work
                log.warning("watching %s failed: %s", path, exc)
