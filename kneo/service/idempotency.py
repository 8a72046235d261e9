"""``Idempotency-Key`` for the POSTs that create or decide something.

The key is scoped to the caller (API key name) and the operation, and bound to a hash of
the canonical request body: the same key and body replays the stored response (with
``Idempotent-Replayed: true``); a different body is ``409 idempotency_key_conflict``; a
request still running under the same key is ``409 resource_locked``. Only successful
responses are stored — a failed attempt releases the key so a retry really retries.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from kneo.errors import InvalidRequest, ResourceLocked

HEADER = "idempotency-key"
MAX_KEY_CHARS = 255


def body_hash(body: BaseModel | dict[str, Any], *extra: str) -> str:
    data = body.model_dump(mode="json") if isinstance(body, BaseModel) else body
    canonical = json.dumps([data, *extra], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def run_idempotent(
    request: Request,
    store: Any,
    *,
    operation: str,
    actor: str,
    request_hash: str | Callable[[], str],
    call: Callable[[], tuple[int, dict[str, Any]]],
) -> JSONResponse:
    """Execute ``call`` at most once per (actor, operation, key); replay it afterwards.

    ``request_hash`` may be a callable: it is then computed only when the request carries
    an ``Idempotency-Key`` (most requests do not, and hashing means dumping the body).
    """
    key = request.headers.get(HEADER)
    if key is None:
        status, payload = call()
        return JSONResponse(payload, status_code=status)
    key = key.strip()
    if not key or len(key) > MAX_KEY_CHARS:
        raise InvalidRequest(
            f"Idempotency-Key must be 1 to {MAX_KEY_CHARS} characters", field="Idempotency-Key"
        )
    scope = f"{actor}:{operation}"
    if callable(request_hash):
        request_hash = request_hash()
    outcome = store.begin_idempotent(scope, key, request_hash)
    if outcome.state == "replay":
        return JSONResponse(
            outcome.response,
            status_code=outcome.status_code or 200,
            headers={"Idempotent-Replayed": "true"},
        )
    if outcome.state == "in_progress":
        raise ResourceLocked(
            "A request with this Idempotency-Key is still in progress; retry later",
            lock="idempotency_key",
        )
    try:
        status, payload = call()
    except BaseException:
        store.release_idempotent(scope, key)
        raise
    store.finish_idempotent(scope, key, status, payload)
    return JSONResponse(payload, status_code=status)
