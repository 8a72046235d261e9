"""Leases a process holds, renewed from one background thread per kind.

A run's lease (``lease_owner``, ``lease_expires_at`` on its row) says a live process is
executing it. It used to be renewed only at step boundaries, so one step longer than the
lease (a slow model, a long function) let it lapse while the run was still executing. Here
one daemon thread renews every driven run's lease every third of its length, whatever the
steps do; a lapsed lease therefore means the process died or lost the database, which is
what the stranded-run sweep (:mod:`kneo.platform.sweeps`) relies on. A worker's claims on
queue records (:mod:`kneo.platform.worker`) are kept the same way: one thread for all of
them, rather than a thread started and joined for each record (~0.18 ms of CPU a run).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from kneo.logs import get_logger
from kneo.periodic import PeriodicTask

log = get_logger("kneo_serv.leases")

K = TypeVar("K", str, int)


class LeaseKeeper(Generic[K]):
    """Calls ``renew`` with every key inside :meth:`holding`, every ``interval`` seconds, on
    one daemon thread named ``name`` (thread-safe; ``renew`` returns how many it renewed)."""

    def __init__(self, name: str, interval: float, renew: Callable[[list[K]], int]) -> None:
        self._name = name
        self._interval = interval
        self._renew: Callable[[list[K]], int] = renew
        self._held: dict[K, int] = {}  # key -> how many holders of it are in progress
        self._lock = threading.Lock()
        self._task: PeriodicTask | None = None

    @contextlib.contextmanager
    def holding(self, key: K) -> Iterator[None]:
        with self._lock:
            self._held[key] = self._held.get(key, 0) + 1
            if self._task is None:
                self._task = PeriodicTask(
                    self._name,
                    self._interval,
                    self.renew_all,
                    logger=log,
                    failure=f"{self._name}: renewing leases failed",
                )
        try:
            yield
        finally:
            with self._lock:
                left = self._held.pop(key) - 1
                if left:
                    self._held[key] = left

    def renew_all(self) -> int:
        """Extend every held lease now; returns how many were renewed. With nothing held the
        thread ends (the next :meth:`holding` starts another): an idle process, or one of the
        many managers a test suite makes, keeps no thread."""
        with self._lock:
            keys = sorted(self._held)  # one order: concurrent renewals lock rows alike
            if not keys:
                task, self._task = self._task, None
        if not keys:
            if task is not None:
                task.stop()  # from its own thread: it ends after this call, nothing joined
            return 0
        return self._renew(keys)

    def stop(self) -> None:
        with self._lock:
            task, self._task = self._task, None
        if task is not None:
            task.stop()
