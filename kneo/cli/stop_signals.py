"""Stop a long-running command on a signal without taking a lock in the signal handler.

Python runs a signal handler in the main thread between two bytecodes, which may be inside
``threading.Event.wait`` while it holds the event's lock; an ``Event.set`` in the handler (the
same lock, not reentrant) then waits for itself forever: ``kneo worker`` and ``kneo
controller run`` could hang on SIGTERM. The handler here only starts a thread that does the
stopping; it takes the lock once the interrupted wait lets go of it.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable


def on_stop_signals(stop: Callable[[], None], *signums: signal.Signals) -> None:
    """Run ``stop`` on a thread of its own each time one of ``signums`` arrives."""

    def _handler(_signum: int, _frame: object) -> None:
        threading.Thread(target=stop, name="kneo-stop-signal", daemon=True).start()

    for signum in signums:
        signal.signal(signum, _handler)


__all__ = ["on_stop_signals"]
