"""``PeriodicTask``: one piece of housekeeping on a daemon thread, every few seconds."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable


class PeriodicTask:
    """A daemon thread calling ``work`` every ``interval`` seconds until :meth:`stop`.

    A call that raises is logged (``failure`` on ``logger``, with the traceback) and the next
    tick tries again: housekeeping must never take its process down.
    """

    def __init__(
        self,
        name: str,
        interval: float,
        work: Callable[[], object],
        *,
        logger: logging.Logger,
        failure: str,
    ) -> None:
        self._stopped = threading.Event()
        self._interval = interval
        self._work = work
        self._logger = logger
        self._failure = failure
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stopped.wait(self._interval):
            try:
                self._work()
            except Exception:
                self._logger.exception(self._failure)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float | None = 10.0) -> None:
        self._stopped.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)
