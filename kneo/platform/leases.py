"""The execution leases of the runs a process drives, renewed from one background thread.

A run's lease (``lease_owner``, ``lease_expires_at`` on its row) says a live process is
executing it. It used to be renewed only at step boundaries, so one step longer than the
lease (a slow model, a long function) let it lapse while the run was still executing. Here
one daemon thread renews every driven run's lease every third of its length, whatever the
steps do; a lapsed lease therefore means the process died or lost the database, which is
what the stranded-run sweep (:mod:`kneo.platform.sweeps`) relies on.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

from kneo.logs import get_logger
from kneo.periodic import PeriodicTask

if TYPE_CHECKING:
    from kneo.store.contracts import RunLeases

log = get_logger("kneo_serv.leases")


class LeaseKeeper:
    """Renews ``owner``'s lease on every run inside :meth:`holding` (thread-safe)."""

    def __init__(self, store: RunLeases, owner: str, lease_seconds: float) -> None:
        self._store = store
        self._owner = owner
        self._lease = lease_seconds
        self._runs: dict[str, int] = {}  # run id -> how many drives of it are in progress
        self._lock = threading.Lock()
        self._task: PeriodicTask | None = None

    @contextlib.contextmanager
    def holding(self, run_id: str) -> Iterator[None]:
        with self._lock:
            self._runs[run_id] = self._runs.get(run_id, 0) + 1
            if self._task is None:
                self._task = PeriodicTask(
                    "kneo-run-leases",
                    self._lease / 3,
                    self.renew_all,
                    logger=log,
                    failure="renewing run leases failed",
                )
        try:
            yield
        finally:
            with self._lock:
                left = self._runs.pop(run_id) - 1
                if left:
                    self._runs[run_id] = left

    def renew_all(self) -> int:
        """Extend every held run's lease now; returns how many were renewed. With nothing
        held the thread ends (the next :meth:`holding` starts another): an idle process, or
        one of the many managers a test suite makes, keeps no thread."""
        with self._lock:
            run_ids = sorted(self._runs)
            if not run_ids:
                task, self._task = self._task, None
        if not run_ids:
            if task is not None:
                task.stop()  # from its own thread: it ends after this call, nothing joined
            return 0
        return int(self._store.renew_run_leases(run_ids, self._owner, self._lease))

    def stop(self) -> None:
        with self._lock:
            task, self._task = self._task, None
        if task is not None:
            task.stop()
