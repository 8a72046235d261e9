"""Injected time. Code that needs "now" takes a :class:`Clock`; tests pass a :class:`ManualClock`."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that moves only when told to; thread-safe."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float = 0.0, **kwargs: float) -> datetime:
        with self._lock:
            self._now += timedelta(seconds=seconds, **kwargs)
            return self._now

    def set(self, value: datetime) -> None:
        with self._lock:
            self._now = value


#: A fraction in [0, 1) for spreading retry waits. Its own generator, never the ``random``
#: module's: a library that draws from the global one moves state that user code (and
#: property-based tests, which check it) seeded.
jitter = random.SystemRandom().random


def utc_iso(value: datetime | None) -> str | None:
    """ISO-8601 with a ``Z`` suffix, the one timestamp format in Kneo's JSON."""
    if value is None:
        return None
    if value.tzinfo is UTC:  # the usual case (``SystemClock``): no conversion needed
        return value.isoformat()[:-6] + "Z"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
