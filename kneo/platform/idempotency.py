"""Idempotency keys for decisions: the one mechanism the platform API and the service share.

``(scope, key)`` is claimed in the store bound to a hash of the canonical request; the same
key with the same request replays the stored response, a different request under the same
key is ``idempotency_key_conflict``, a request still running under it is ``resource_locked``.
Only successes are stored: a failed attempt releases the key so a retry really retries.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kneo.errors import InvalidRequest, ResourceLocked

if TYPE_CHECKING:
    from kneo.store.api import Store

MAX_KEY_CHARS = 255


def idempotent(
    store: Store,
    *,
    scope: str,
    key: str,
    digest: str,
    call: Callable[[], tuple[int, dict[str, Any]]],
) -> tuple[int, dict[str, Any], bool]:
    """Run ``call`` at most once per ``(scope, key)``; returns ``(status, body, replayed)``."""
    key = key.strip()
    if not key or len(key) > MAX_KEY_CHARS:
        raise InvalidRequest(
            f"Idempotency-Key must be 1 to {MAX_KEY_CHARS} characters", field="Idempotency-Key"
        )
    outcome = store.idempotency.begin_idempotent(scope, key, digest)
    if outcome.state == "replay":
        return outcome.status_code or 200, dict(outcome.response or {}), True
    if outcome.state == "in_progress":
        raise ResourceLocked(
            "a request with this Idempotency-Key is still in progress; retry later",
            lock="idempotency_key",
        )
    try:
        status, body = call()
    except BaseException:
        store.idempotency.finish_idempotent(scope, key, None)
        raise
    store.idempotency.finish_idempotent(scope, key, (status, body))
    return status, body, False
