"""``PeriodicTask``: one piece of housekeeping on a daemon thread, every few seconds."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable


class PeriodicTask:
    """A daemon thread calling ``work`` every ``interval`` seconds until :meth:`stop`.

    A call that raises is logged (``failure`` on ``logger``, with the traceback) and the next
    tick tries again: housekeeping must never take its process down. ``keep_going``: a call
    that returns something truthy (a queue with more waiting) is followed at once by the next.
    """

    def __init__(
        self,
        name: str,
        interval: float,
        work: Callable[[], object],
        *,
        logger: logging.Logger,
        failure: str,
        keep_going: bool = False,
    ) -> None:
        self._stopped = threading.Event()
        self._interval = interval
        self._work = work
        self._logger = logger
        self._failure = failure
        self._keep_going = keep_going
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        busy = False
        while not self._stopped.wait(0 if busy else self._interval):
            try:
                busy = bool(self._work()) and self._keep_going
            except Exception:
                self._logger.exception(self._failure)
                busy = False

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float | None = 10.0) -> None:
        self._stopped.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)
