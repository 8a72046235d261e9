"""The A2A server's one way into Kneo: the HTTP API, called in-process with the caller's key.

As for MCP (:mod:`kneo.service.mcp`), every A2A operation is one or more API routes, so an
agent gets exactly what its key gets over HTTP: the same scope checks (a key without
``human:write`` cannot answer an ``input-required`` task), the same admission (an
environment's ``require_approved_bundle``, its policy, the trust kernel), the same
idempotency (the A2A ``messageId`` is the ``Idempotency-Key``), the same audit with the
key's name. There is no second implementation of starting, resuming or cancelling a run.
Every call carries the caller's project (``X-Kneo-Project``): the one the A2A request named,
else the key's home, so a task, a skill or a listing is always of that project.

An API error becomes the A2A error a client can act on, its Kneo code and HTTP status in
the error's data (``error``, ``status``, ``field`` where one is named).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from a2a.server.context import ServerCallContext
from a2a.utils.errors import (
    A2AError,
    InternalError,
    InvalidParamsError,
    InvalidRequestError,
    TaskNotFoundError,
)

from kneo.service.api_calls import call_headers, json_body, segment

if TYPE_CHECKING:
    import httpx2

#: How the API's calls from A2A are marked (request log, ``X-Kneo-Via``).
VIA = "a2a"
#: The call context's state key holding the :class:`Caller` (never logged or returned).
CALLER_STATE = "kneo_caller"


@dataclass(frozen=True)
class Caller:
    """Who an A2A request's API calls are made as: the API key it presented (checked before
    dispatch) and the project it acts in (``None``: the key's home project)."""

    key: str | None
    project: str | None = None

    def __repr__(self) -> str:
        return f"Caller(project={self.project!r})"  # never the key


def caller_of(context: ServerCallContext) -> Caller:
    """The caller of an A2A request (signed in before dispatch)."""
    found = context.state.get(CALLER_STATE)
    return found if isinstance(found, Caller) else Caller(None)


def api_error(status: int, data: Any, *, missing: str | None = None) -> A2AError:
    """The A2A error of an API answer ``status`` with body ``data``. ``missing`` names the
    task a ``404`` is about (then ``TaskNotFoundError``)."""
    body = data if isinstance(data, Mapping) else {}
    code = str(body.get("error") or "error")
    message = str(body.get("message") or f"HTTP {status}")
    details = {"error": code, "status": str(status)}
    if body.get("field"):
        details["field"] = str(body["field"])
    if status == 404 and missing is not None:
        return TaskNotFoundError(f"task {missing} not found: {message}", data=details)
    if status in (400, 404, 413, 422):
        return InvalidParamsError(f"{code}: {message}", data=details)
    if status < 500:  # 401, 403, 409, 429: the request is refused as it stands
        return InvalidRequestError(f"{code}: {message}", data=details)
    return InternalError(f"{code}: {message}", data=details)


class ApiCalls:
    """The API routes the A2A server uses, each called with the caller's key, in its
    project.

    ``client`` is an ``httpx2.AsyncClient`` on the service app (in-process)."""

    def __init__(self, client: httpx2.AsyncClient) -> None:
        self._client = client

    async def request(
        self,
        caller: Caller,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        missing: str | None = None,
        prefer: str | None = None,
    ) -> dict[str, Any]:
        """The route's JSON answer; an :class:`A2AError` for an error answer."""
        headers = call_headers(
            VIA,
            key=caller.key,
            project=caller.project,
            idempotency_key=idempotency_key,
            prefer=prefer,
        )
        response = await self._client.request(
            method, path, json=body, params=dict(params or {}), headers=headers
        )
        data = json_body(response)
        if response.status_code >= 400:
            raise api_error(response.status_code, data, missing=missing)
        return data if isinstance(data, dict) else {"value": data}

    async def run(self, caller: Caller, run_id: str) -> dict[str, Any]:
        return await self.request(caller, "GET", f"/v1/runs/{segment(run_id)}", missing=run_id)

    async def human_task(self, caller: Caller, continuation_id: str) -> dict[str, Any]:
        path = f"/v1/human-tasks/{segment(continuation_id)}"
        return await self.request(caller, "GET", path, missing=continuation_id)

    async def start(
        self, caller: Caller, body: dict[str, Any], idempotency_key: str
    ) -> dict[str, Any]:
        return await self.request(
            caller, "POST", "/v1/runs", body=body, idempotency_key=idempotency_key
        )

    async def resume(
        self,
        caller: Caller,
        continuation_id: str,
        body: dict[str, Any],
        idempotency_key: str,
        *,
        at_once: bool = False,
    ) -> dict[str, Any]:
        """The human resume route: its outcome (the route waits for the run as it does for
        every caller), or with ``at_once`` the run as handed over (``respond-async``)."""
        path = f"/v1/human-tasks/{segment(continuation_id)}/resume"
        return await self.request(
            caller,
            "POST",
            path,
            body=body,
            idempotency_key=idempotency_key,
            missing=continuation_id,
            prefer="respond-async" if at_once else None,
        )

    async def cancel(self, caller: Caller, run_id: str) -> dict[str, Any]:
        path = f"/v1/runs/{segment(run_id)}/cancel"
        return await self.request(caller, "POST", path, missing=run_id)

    async def list_runs(self, caller: Caller, params: Mapping[str, Any]) -> dict[str, Any]:
        return await self.request(caller, "GET", "/v1/runs", params=params)

    async def pauses(self, caller: Caller, run_id: str) -> list[str]:
        """The continuation ids of the run's pauses, oldest first (its trace's
        ``run_paused`` events)."""
        path = f"/v1/runs/{segment(run_id)}/trace"
        out: list[str] = []
        offset = 0
        while True:
            params = {"event_type": "run_paused", "limit": 1000, "offset": offset}
            page = await self.request(caller, "GET", path, params=params, missing=run_id)
            events = list(page.get("events") or [])
            for event in events:
                found = (event.get("payload") or {}).get("continuation_id")
                if found and found not in out:
                    out.append(str(found))
            offset += len(events)
            if not events or offset >= int(page.get("total") or 0):
                return out

    async def active_bundles(self, caller: Caller, limit: int = 500) -> list[dict[str, Any]]:
        """The active registry revisions the caller may read in its project (every page, up
        to ``limit``)."""
        out: list[dict[str, Any]] = []
        cursor: str | None = None
        while len(out) < limit:
            params = {"status": "active", "limit": 100, **({"cursor": cursor} if cursor else {})}
            page = await self.request(caller, "GET", "/v1/registry/bundles", params=params)
            out += list(page.get("revisions") or [])
            cursor = page.get("next_cursor")
            if not cursor:
                break
        return out[:limit]


__all__ = ["CALLER_STATE", "VIA", "ApiCalls", "Caller", "api_error", "caller_of", "segment"]
