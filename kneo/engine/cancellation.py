"""Cooperative cancellation: checked before and after every step and between agent turns.

A token is cancelled locally (:meth:`CancellationToken.cancel`) or by an injected ``probe``
that looks elsewhere (the platform asks the store whether the run was cancelled by another
process, at most every ``probe_interval`` seconds). Nothing is interrupted mid-call: a
provider or tool call finishes, then the next check stops the run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RunCancelled(Exception):
    """Raised at a cancellation check; the engine turns it into a ``Cancelled`` outcome."""


class CancellationToken:
    def __init__(
        self,
        probe: Callable[[], bool] | None = None,
        *,
        probe_interval: float = 0.5,
        monotonic: Callable[[], float] = time.monotonic,
        probe_now: bool = True,
    ) -> None:
        self._event = threading.Event()
        self._probe = probe
        self._interval = probe_interval
        self._monotonic = monotonic
        # probe_now=False: the caller has just seen the run, the first probe waits an interval
        self._last_probe = float("-inf") if probe_now else monotonic()
        self.reason: str | None = None

    def cancel(self, reason: str = "cancelled") -> None:
        self.reason = reason
        self._event.set()

    @property
    def cancelled(self) -> bool:
        if self._event.is_set():
            return True
        if self._probe is not None:
            now = self._monotonic()
            if now - self._last_probe >= self._interval:
                self._last_probe = now
                if self._probe():
                    self.cancel("cancelled elsewhere")
                    return True
        return False

    def raise_if_cancelled(self) -> None:
        if self.cancelled:
            raise RunCancelled(self.reason or "cancelled")
