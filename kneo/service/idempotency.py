"""``Idempotency-Key`` for the POSTs that create or decide something.

The key is scoped to the caller (API key name) and the operation, and bound to a hash of
the canonical request body: the same key and body replays the stored response (with
``Idempotent-Replayed: true``); a different body is ``409 idempotency_key_conflict``; a
request still running under the same key is ``409 resource_locked``. Only successful
responses are stored — a failed attempt releases the key so a retry really retries.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from kneo.jsontext import content_hash

if TYPE_CHECKING:
    from kneo.platform.manager import PlatformManager

HEADER = "idempotency-key"


def body_hash(body: BaseModel | dict[str, Any], *extra: str) -> str:
    data = body.model_dump(mode="json") if isinstance(body, BaseModel) else body
    return content_hash([data, *extra])


def run_idempotent(
    request: Request,
    manager: PlatformManager,
    *,
    operation: str,
    actor: str,
    request_hash: str | Callable[[], str],
    call: Callable[[], tuple[int, dict[str, Any]]],
) -> JSONResponse:
    """Execute ``call`` at most once per (actor, operation, key); replay it afterwards
    (:meth:`PlatformManager.idempotent`, the one the platform's decisions use too).

    ``request_hash`` may be a callable: it is then computed only when the request carries
    an ``Idempotency-Key`` (most requests do not, and hashing means dumping the body).
    """
    key = request.headers.get(HEADER)
    if key is None:
        status, payload = call()
        return JSONResponse(payload, status_code=status)
    digest = request_hash() if callable(request_hash) else request_hash
    status, payload, replayed = manager.idempotent(
        scope=f"{actor}:{operation}", key=key, digest=digest, call=call
    )
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    return JSONResponse(payload, status_code=status, headers=headers)
