"""``/v1/human-tasks``: the inbox of paused runs, and the decisions that resume them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from kneo.platform import PlatformManager
from kneo.service.auth import Principal, require_scope
from kneo.service.dependencies import manager_dep
from kneo.service.idempotency import HEADER
from kneo.service.middleware import annotate
from kneo.service.pagination import PageParams, paging
from kneo.service.schemas import ResumeRequest, check_limits

router = APIRouter(tags=["human-tasks"])


@router.get("/human-tasks", dependencies=[Depends(require_scope("human:read"))])
def list_human_tasks(
    run_id: str | None = None,
    workflow_kind: str | None = None,
    assignee: str | None = None,
    kind: str | None = None,
    escalated: bool | None = None,
    older_than_seconds: float | None = None,
    page: PageParams = Depends(paging(("created_at",), "created_at", "asc")),
    manager: PlatformManager = Depends(manager_dep),
) -> dict[str, Any]:
    """Pending human tasks, filtered by run, workflow kind, assignee or request kind."""
    listed = manager.list_human_tasks(
        run_id=run_id,
        workflow_kind=workflow_kind,
        assignee=assignee,
        kind=kind,
        escalated=escalated,
        older_than_seconds=older_than_seconds,
        sort="oldest" if page.sort_order == "asc" else "newest",
        limit=page.limit,
        offset=page.offset,
    )
    return {**listed, **page.metadata(listed["count"], listed["total"])}


@router.get("/human-tasks/{continuation_id}", dependencies=[Depends(require_scope("human:read"))])
def get_human_task(
    request: Request, continuation_id: str, manager: PlatformManager = Depends(manager_dep)
) -> dict[str, Any]:
    """One human task with all its requests."""
    annotate(request, continuation_id=continuation_id)
    return manager.get_human_task(continuation_id)


@router.post("/human-tasks/{continuation_id}/resume")
def resume_human_task(
    request: Request,
    continuation_id: str,
    body: ResumeRequest,
    principal: Principal = Depends(require_scope("human:write")),
    manager: PlatformManager = Depends(manager_dep),
) -> JSONResponse:
    """Apply a decision; the run continues once no request is pending."""
    check_limits(body, request.app.state.settings.limits)
    annotate(request, continuation_id=continuation_id)

    # One idempotency mechanism: the platform's (same scope, key and replay as the API).
    key = request.headers.get(HEADER)
    result = manager.resume(
        continuation_id,
        request_id=body.request_id,
        decision=body.decision,
        content=body.content,
        selected_option=body.selected_option,
        actor=principal.name,
        idempotency_key=key,
    )
    annotate(request, run_id=result.run_id)
    headers = {"Idempotent-Replayed": "true"} if getattr(result, "replayed", False) else None
    return JSONResponse(result.to_dict(), status_code=200, headers=headers)
