"""Failed sign-ins cost something: a client that keeps presenting wrong keys is told to wait.

Every wrong API key (``Authorization``/``X-API-Key`` on the API, the form on the console's
sign-in page) counts against two buckets: the client's address, and the first characters of
the key it presented (so one key guessed from many addresses is slowed too). A bucket with
``KNEO_SERV_AUTH_MAX_FAILURES`` failures inside ``KNEO_SERV_AUTH_FAILURE_WINDOW_SECONDS``
refuses the next attempt from that client or with that prefix, right or wrong, with ``429
too_many_requests`` and ``Retry-After`` until its oldest failure leaves the window. A
successful sign-in does not clear a bucket: a guesser who also holds one valid key cannot
reset its own count. Each refusal is logged (the client's address, never the key) and
counted in ``kneo_auth_failures_total``. The counts are per process: N replicas allow N
times the rate, which still turns a guessing attack from thousands a second into a few a
minute.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

from kneo import metrics
from kneo.errors import TooManyRequests
from kneo.logs import get_logger
from kneo.lrucache import LRUCache

log = get_logger("kneo_serv.auth")

#: How many leading characters of a presented key make its bucket.
PREFIX_CHARS = 8
#: Buckets kept (least recently used forgotten first): memory stays bounded however many
#: addresses or prefixes an attacker uses.
MAX_BUCKETS = 50_000


class SignInThrottle:
    """Counts failed sign-ins per client address and per key prefix."""

    def __init__(
        self,
        max_failures: int,
        window_seconds: float,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max(1, max_failures)
        self.window = window_seconds
        self._now = monotonic
        self._lock = threading.Lock()
        self._failures: LRUCache[str, deque[float]] = LRUCache(MAX_BUCKETS)

    def check(self, client: str, presented: str | None, *, surface: str) -> None:
        """Refuse (``429``) while the client's or the key prefix's bucket is full."""
        wait = max(self._wait(f"client:{client}"), self._wait(_prefix(presented)))
        if wait > 0:
            metrics.record_auth_failure(surface, "throttled")
            log.warning(
                "sign-in throttled on the %s for client %s: retry in %ds", surface, client, wait
            )
            raise TooManyRequests(
                f"Too many failed sign-in attempts from this client: try again in {wait} seconds",
                retry_after=wait,
            )

    def failed(self, client: str, presented: str | None, *, surface: str) -> None:
        """Count one wrong key from ``client``."""
        now = self._now()
        with self._lock:
            for key in (f"client:{client}", _prefix(presented)):
                if key:
                    bucket = self._failures.get(key) or deque()
                    bucket.append(now)
                    while len(bucket) > self.max_failures:
                        bucket.popleft()
                    self._failures.put(key, bucket)
        metrics.record_auth_failure(surface, "invalid")
        log.warning("invalid API key on the %s from client %s", surface, client)

    def _wait(self, key: str) -> int:
        """Whole seconds until ``key``'s bucket takes another attempt (0: now)."""
        if not key:
            return 0
        with self._lock:
            bucket = self._failures.get(key)
            if bucket is None or len(bucket) < self.max_failures:
                return 0
            left = bucket[0] + self.window - self._now()
        return math.ceil(left) if left > 0 else 0


def _prefix(presented: str | None) -> str:
    return f"key:{presented[:PREFIX_CHARS]}" if presented else ""
