"""Garbage collection while Kneo starts, in the CLI and in a library user's process.

A fresh process allocates ~100k long-lived objects while it imports (modules, classes,
pydantic and SQLAlchemy schemas). With the default thresholds the collector walks them
~140 times and frees nothing: ~10 % of a local ``kneo human resume``'s CPU.

* Library code: the first use of a lazy export (``from kneo import create_platform``) and
  :func:`kneo.platform.create_platform` run under :func:`collecting_rarely`, which raises the
  threshold for their duration only, restores it and moves what the block left in the young
  generations to the oldest one, where a collection would have put it: otherwise the next
  young collection (in the first ``resume`` of a fresh process: 35 ms of its 60) walks every
  object start-up made. Nothing stays frozen (the process is not Kneo's to tune), and a
  process that froze objects of its own is left as it is.
* The console entry point calls :func:`begin`; :func:`done` freezes what start-up built
  (later collections skip it) and restores the thresholds before a command's own work — the
  local platform calls it once built, long-running commands before they serve. Forgetting
  :func:`done` is harmless: the collector still runs, only less often.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

#: First-generation threshold during start-up (the default is 700): above what importing the
#: platform allocates (~130k objects), so no collection walks them while they are young; at
#: 100k one did (21 M instructions, ~1 % of the import, and ~30 ms of wall time in cache misses).
STARTUP_THRESHOLD = 1_000_000

_saved: tuple[int, int, int] | None = None
_lock = threading.Lock()
_depth = 0  # open collecting_rarely() blocks
_library_saved: tuple[int, int, int] | None = None


def begin() -> None:
    """Collect rarely until :func:`done`; only the console entry point calls this."""
    global _saved
    if _saved is None:
        _saved = gc.get_threshold()
        gc.set_threshold(STARTUP_THRESHOLD, _saved[1], _saved[2])


def done() -> None:
    """Start-up is over: freeze its objects and restore the thresholds. A no-op unless
    :func:`begin` ran, so in-process callers (tests, embedding) never freeze anything."""
    global _saved
    if _saved is not None:
        gc.freeze()
        gc.set_threshold(*_saved)
        _saved = None


@contextmanager
def collecting_rarely() -> Iterator[None]:
    """Collect rarely while the block runs (an import of Kneo's modules, building a
    platform), then restore the thresholds. Nested blocks, and blocks inside the CLI's
    :func:`begin`, change nothing more."""
    global _depth, _library_saved
    with _lock:
        _depth += 1
        if _depth == 1 and _saved is None:
            _library_saved = gc.get_threshold()
            gc.set_threshold(STARTUP_THRESHOLD, _library_saved[1], _library_saved[2])
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _library_saved is not None:
                gc.set_threshold(*_library_saved)
                _library_saved = None
                if gc.get_freeze_count() == 0:  # nothing of the process's own is frozen
                    gc.freeze()  # every tracked object to the permanent generation ...
                    gc.unfreeze()  # ... and back to the oldest: promoted, nothing walked
