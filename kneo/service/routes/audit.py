"""``GET /v1/audit-events``: the audit log, newest first, redacted on write."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request

from kneo.platform import AuditQuery, PlatformManager
from kneo.service.auth import require_scope
from kneo.service.dependencies import manager_dep
from kneo.service.pagination import CURSOR, INCLUDE, OFFSET, keyset_params, list_cap
from kneo.service.query_params import StrictQueryRoute

router = APIRouter(tags=["audit"], route_class=StrictQueryRoute)


@router.get("/audit-events", dependencies=[Depends(require_scope("audit:read"))])
def list_audit_events(
    request: Request,
    event_type: str | None = None,
    run_id: str | None = None,
    continuation_id: str | None = None,
    limit: int | None = Query(None, ge=1, description="Page size (capped)."),
    offset: int = OFFSET,
    cursor: str | None = CURSOR,
    include: str | None = INCLUDE,
    sort_by: Literal["created_at"] = Query("created_at", description="Newest first only."),
    sort_order: Literal["desc"] = Query("desc"),
    manager: PlatformManager = Depends(manager_dep),
) -> dict[str, Any]:
    """Audit events newest first, filtered by type, run or continuation; paged by ``cursor``
    (flat however deep) or a bounded ``offset``; ``total`` counted up to the count cap."""
    keyset_params(request, offset, include)
    window = request.app.state.settings.limits.max_list_offset
    return {
        "window": window,
        "sort_by": sort_by,
        "sort_order": sort_order,
    } | manager.list_audit_events(
        AuditQuery(
            event_type=event_type, run_id=run_id, continuation_id=continuation_id,
            limit=list_cap(request, limit), offset=offset, cursor=cursor or None,
        )
    )  # fmt: skip


@router.get("/audit-events/{event_id}", dependencies=[Depends(require_scope("audit:read"))])
def get_audit_event(
    event_id: str, manager: PlatformManager = Depends(manager_dep)
) -> dict[str, Any]:
    """One audit event by its id (``404 not_found`` when there is none)."""
    return manager.get_audit_event(event_id)
