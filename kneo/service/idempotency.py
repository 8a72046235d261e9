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

from fastapi import Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from kneo.jsontext import content_hash

if TYPE_CHECKING:
    from kneo.platform.manager import PlatformManager


def _declare_key(
    request: Request,
    key: str | None = Header(
        None,
        alias="Idempotency-Key",
        description="Retry safely (1-255 characters): the same key and body replays the "
        "first answer (`Idempotent-Replayed: true`); another body under it is `409 "
        "idempotency_key_conflict`.",
    ),
) -> None:
    request.state.idempotency_key = key


#: The dependency of every operation that honours ``Idempotency-Key``: it declares the
#: header in the OpenAPI document and is the only way a route reads the key
#: (:func:`idempotency_key`), so an operation honours the key exactly when it declares it.
IDEMPOTENT = Depends(_declare_key)


def idempotency_key(request: Request) -> str | None:
    """The request's ``Idempotency-Key`` as the operation's :data:`IDEMPOTENT` dependency
    read it (``None`` for an operation that does not declare it: it has none to honour)."""
    key = getattr(request.state, "idempotency_key", None)
    return str(key) if key is not None else None


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
    key = idempotency_key(request)
    if key is None:
        status, payload = call()
        return JSONResponse(payload, status_code=status)
    digest = request_hash() if callable(request_hash) else request_hash
    status, payload, replayed = manager.idempotent(
        scope=f"{actor}:{operation}", key=key, digest=digest, call=call
    )
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    return JSONResponse(payload, status_code=status, headers=headers)
