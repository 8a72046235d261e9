"""Garbage collection while a ``kneo`` process starts.

A fresh process allocates ~100k long-lived objects while it imports (modules, classes,
pydantic and SQLAlchemy schemas). With the default thresholds the collector walks them
~140 times and frees nothing: ~10 % of a local ``kneo human resume``'s CPU. The console
entry point calls :func:`begin`; :func:`done` freezes what start-up built (later
collections skip it) and restores the thresholds before a command's own work — the local
platform calls it once built, long-running commands before they serve. Forgetting
:func:`done` is harmless: the collector still runs, only less often.
"""

from __future__ import annotations

import gc

#: First-generation threshold during start-up (the default is 700).
STARTUP_THRESHOLD = 100_000

_saved: tuple[int, int, int] | None = None


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
