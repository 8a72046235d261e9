"""Failed sign-ins cost something: a client that keeps presenting wrong keys is told to wait.

Every wrong API key (``Authorization``/``X-API-Key`` on the API and ``/mcp``, the form on the
console's sign-in page) counts against two buckets: the client's address (the real one
behind a trusted proxy, :mod:`kneo.service.proxies`), and the key tried (by its SHA-256, so
one wrong key presented from many addresses is slowed too). A bucket with
``KNEO_SERV_AUTH_MAX_FAILURES`` failures inside ``KNEO_SERV_AUTH_FAILURE_WINDOW_SECONDS``
refuses the next attempt from that client or with that key, right or wrong, with ``429
too_many_requests`` and ``Retry-After`` until its oldest failure leaves the window.

One client's wrong keys never lock another user out: a right key fails nowhere, so its own
bucket never fills, and a key that has already signed in from an address keeps passing that
address's full bucket (the people behind one office NAT go on working while a colleague's
script guesses). A new key from a full client waits, so guessing cannot go on; a guesser who
also holds one valid key passes only with that key, and a successful sign-in does not clear a
bucket. Each refusal is logged (the client's address, never the key) and counted in
``kneo_auth_failures_total``. The counts are per process: N replicas allow N times the rate,
which still turns a guessing attack from thousands a second into a few a minute.
"""

from __future__ import annotations

import hashlib
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

#: Buckets kept (least recently used forgotten first): memory stays bounded however many
#: addresses or keys an attacker uses. The same bound holds the (client, key) pairs that
#: signed in.
MAX_BUCKETS = 50_000


class SignInThrottle:
    """Counts failed sign-ins per client address and per key tried."""

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
        #: (client, key bucket) pairs that signed in: they pass the client's full bucket
        self._proven: LRUCache[tuple[str, str], bool] = LRUCache(MAX_BUCKETS)

    def check(self, client: str, presented: str | None, *, surface: str) -> None:
        """Refuse (``429``) while the key's bucket is full, or the client's is and this key
        has not signed in from this client before."""
        key = _key(presented)
        wait = self._wait(key)
        if not (key and self._proven.get((client, key))):
            wait = max(wait, self._wait(f"client:{client}"))
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
        key = _key(presented)
        now = self._now()
        with self._lock:
            for bucket_key in (f"client:{client}", key):
                if bucket_key:
                    bucket = self._failures.get(bucket_key) or deque()
                    bucket.append(now)
                    while len(bucket) > self.max_failures:
                        bucket.popleft()
                    self._failures.put(bucket_key, bucket)
        metrics.record_auth_failure(surface, "invalid")
        log.warning("invalid API key on the %s from client %s", surface, client)

    def succeeded(self, client: str, presented: str | None) -> None:
        """``presented`` signed in from ``client``: it passes that client's full bucket."""
        key = _key(presented)
        if key:
            self._proven.put((client, key), True)

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


def _key(presented: str | None) -> str:
    """The bucket of the key tried: its SHA-256 (the key itself is never kept)."""
    if not presented:
        return ""
    return "key:" + hashlib.sha256(presented.encode("utf-8", "surrogatepass")).hexdigest()


__all__ = ["MAX_BUCKETS", "SignInThrottle"]
