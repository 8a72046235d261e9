"""What the MCP and A2A bridges share when they call the service's own HTTP API in-process
(:mod:`kneo.service.mcp`, :mod:`kneo.service.a2a_bridge`): the headers that carry the caller
to the route, path segments, and the answer's body. One copy, so both bridges present a
caller to the routes the same way."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from kneo.errors import ErrorCode
from kneo.projects import PROJECT_HEADER

if TYPE_CHECKING:
    import httpx2


def call_headers(
    via: str,
    *,
    key: str | None,
    project: str | None,
    idempotency_key: str | None = None,
    prefer: str | None = None,
) -> dict[str, str]:
    """The headers of one API call made for a caller: which bridge made it (``X-Kneo-Via``),
    the caller's key and project, and what was asked of the route."""
    headers = {"X-Kneo-Via": via}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    if project:
        headers[PROJECT_HEADER] = project
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    if prefer:
        headers["Prefer"] = prefer
    return headers


def segment(value: str) -> str:
    """A path segment, percent-encoded."""
    return quote(str(value), safe="")


def json_body(response: httpx2.Response) -> Any:
    """The answer's decoded JSON; a body that is not JSON becomes a ``bad_response`` error
    document, so the caller reports it as it reports the API's own errors."""
    try:
        return response.json()
    except ValueError:
        return {"error": ErrorCode.bad_response, "message": response.text[:300]}
