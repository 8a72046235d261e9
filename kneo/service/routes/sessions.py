"""``GET /v1/sessions/{session_id}``: a session's runs as a chain, oldest first.

A session is the ``session_id`` a caller gave its runs (``POST /v1/runs``); it exists by its
runs, so an id no run carries is ``404``. The chain pages like any listing (``cursor``,
flat however long the session: the ``(session_id, created_at, run_id)`` index).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request

from kneo.errors import ErrorCode, NotFound
from kneo.platform import PlatformManager, RunQuery
from kneo.service.auth import require_scope
from kneo.service.dependencies import manager_dep
from kneo.service.pagination import CURSOR, list_cap
from kneo.service.query_params import StrictQueryRoute

router = APIRouter(tags=["runs"], route_class=StrictQueryRoute)


@router.get("/sessions/{session_id}", dependencies=[Depends(require_scope("runs:read"))])
def get_session(
    request: Request,
    session_id: str = Path(..., max_length=128),
    limit: int | None = Query(None, ge=1, description="Runs per page (capped)."),
    cursor: str | None = CURSOR,
    manager: PlatformManager = Depends(manager_dep),
) -> dict[str, Any]:
    """The session's runs in the order they were created (each with its status and
    whether it failed), paged by ``cursor``."""
    found = manager.list_runs(
        RunQuery(
            session_id=session_id, limit=list_cap(request, limit), sort_order="asc", cursor=cursor
        )
    )
    if not found["runs"] and cursor is None:
        raise NotFound(
            f"no run is in session {session_id!r}",
            code=ErrorCode.not_found,
            session_id=session_id,
        )
    return {"session_id": session_id, **found}


__all__ = ["router"]
