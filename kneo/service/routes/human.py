"""``/v1/human-tasks``: the inbox of paused runs, and the decisions that resume them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from kneo.engine.human import Decision
from kneo.errors import InvalidRequest
from kneo.platform import TaskQuery
from kneo.redaction import shows_personal_data
from kneo.service.auth import missing_scope
from kneo.service.continuations import HANDED_OFF, PREFER_WAIT, continuation_answer
from kneo.service.deciders import assignee_names
from kneo.service.dependencies import Caller, caller_dep
from kneo.service.idempotency import IDEMPOTENT, idempotency_key
from kneo.service.middleware import annotate
from kneo.service.pagination import PageParams, listing
from kneo.service.query_params import StrictQueryRoute
from kneo.service.schemas import DecisionsRequest, ResumeRequest, check_limits

router = APIRouter(tags=["human-tasks"], route_class=StrictQueryRoute)
#: What ``include=context`` takes besides ``human:read``: the context is the run's data.
CONTEXT_SCOPE = "runs:read"


#: (sort_by, sort_order) -> the inbox's order (a deadline's: the undated tasks last)
_SORTS = {
    ("created_at", "asc"): "oldest",
    ("created_at", "desc"): "newest",
    ("expires_at", "asc"): "expiring",
    ("expires_at", "desc"): "expiring_last",
}


@router.get("/human-tasks")
def list_human_tasks(
    request: Request,
    run_id: str | None = None,
    workflow_kind: str | None = None,
    workflow: str | None = Query(None, description="Workflow name (a promotion: the bundle)."),
    environment: str | None = None,
    assignee: str | None = Query(
        None,
        description="An assignee (a key's name, `user:EMAIL`, `group:NAME`), or `mine`: every "
        "entry that names the caller (their names, their groups and the people directory's).",
    ),
    kind: str | None = None,
    escalated: bool | None = None,
    status: str | None = Query(
        None, description="`pending` (every listed task is) or `escalated` (= escalated=true)."
    ),
    older_than_seconds: float | None = None,
    q: str | None = Query(
        None,
        max_length=500,
        description="Search: tasks holding every word of it (whole words, any case) in "
        "their prompts, run input, workflow or bundle name, or assignees.",
    ),
    page: PageParams = Depends(listing(("created_at", "expires_at"), "created_at", "asc")),
    caller: Caller = Depends(caller_dep("human:read")),
) -> dict[str, Any]:
    """Pending human tasks, filtered by run, workflow, environment, assignee or request kind
    (``promotion``: promotions) and searched by words (``q``); paged by ``cursor`` (flat
    however deep) or a bounded ``offset``; ``total`` always (exact; with
    ``KNEO_SERV_MAX_LIST_COUNT=N`` up to N past the page, then ``total_capped``), ``counts_by_assignee`` with
    ``include=counts`` (each capped the same way: ``counts_capped``). Each task carries ``input_preview``, the first words of its run's
    input."""
    escalated = _escalated_filter(status, escalated)  # a wrong status is refused first
    query = TaskQuery(
        run_id=run_id, workflow_kind=workflow_kind, workflow_name=workflow,
        environment=environment, assignee=_assignee_filter(request, caller, assignee),
        kind=kind, escalated=escalated, sort=_SORTS[page.sort_by, page.sort_order],
        limit=page.limit, offset=page.offset, cursor=page.cursor, q=q,
    )  # fmt: skip
    listed = caller.manager.list_human_tasks(
        query,
        older_than_seconds=older_than_seconds,
        by_assignee=page.counts,
        show_personal=shows_personal_data(caller.principal.scopes),
    )
    for task in listed["tasks"]:  # the original's clients key a task by ``id``
        task.setdefault("id", task["continuation_id"])
    return {
        **listed,
        **page.metadata(listed["count"], listed["total"], capped=listed["total_capped"]),
        "window": page.window,
    }


def _escalated_filter(status: str | None, escalated: bool | None) -> bool | None:
    """``escalated`` as asked, or ``True`` for ``status=escalated`` (the inbox lists pending
    tasks only, so ``pending`` filters nothing more)."""
    if status not in (None, "pending", "escalated"):
        raise InvalidRequest(
            f"status must be 'pending' or 'escalated', got {status!r}: the inbox lists "
            "pending tasks",
            field="status",
        )
    return True if status == "escalated" else escalated


def _assignee_filter(
    request: Request, caller: Caller, assignee: str | None
) -> str | tuple[str, ...] | None:
    """The assignee as given, or for ``mine`` every name the caller is listed under."""
    if assignee != "mine":
        return assignee
    return assignee_names(request.app, caller.principal.identity(), caller.principal.project)


@router.get("/human-tasks/{continuation_id}")
def get_human_task(
    request: Request,
    continuation_id: str,
    include: str | None = Query(
        None,
        description="``context``: the run's input, the agents' conversations up to the "
        "pause, the workflow position, earlier decisions and each request's own context "
        "(needs ``runs:read`` as well).",
    ),
    caller: Caller = Depends(caller_dep("human:read")),
) -> dict[str, Any]:
    """One human task with all its requests (a promotion: with its approvals so far); with
    ``include=context`` the run's context a decider judges by."""
    if include not in (None, "", "context"):
        raise InvalidRequest(f"include must be 'context', got {include!r}", field="include")
    if include == "context" and not caller.principal.has(CONTEXT_SCOPE):
        # the context is the run's data: it takes what reading the run takes
        raise missing_scope(CONTEXT_SCOPE)
    annotate(request, continuation_id=continuation_id)
    return caller.manager.get_human_task(
        continuation_id,
        show_personal=shows_personal_data(caller.principal.scopes),
        include_context=include == "context",
    )


@router.post(
    "/human-tasks/{continuation_id}/resume",
    responses=HANDED_OFF,
    dependencies=[IDEMPOTENT],
    openapi_extra=PREFER_WAIT,
)
async def resume_human_task(
    request: Request,
    continuation_id: str,
    body: ResumeRequest,
    caller: Caller = Depends(caller_dep("human:write")),
) -> JSONResponse:
    """Apply a decision; the run continues once no request is pending: within the request
    (``200``, its outcome) or, where workers run, on a worker (``202`` with ``Location``, or
    its outcome if it pauses or ends within ``Prefer: wait=N`` seconds)."""
    check_limits(body, request.app.state.settings.limits)
    annotate(request, continuation_id=continuation_id)
    decision = Decision(body.request_id, body.decision, body.content, body.selected_option)
    # One idempotency mechanism: the platform's (same scope, key and replay as the API).
    result = await run_in_threadpool(
        caller.manager.resume,
        continuation_id,
        decision,
        actor=caller.principal.name,
        idempotency_key=idempotency_key(request),
        metadata=body.metadata,
    )
    annotate(request, run_id=result.run_id)
    return await continuation_answer(request, caller, result)


@router.post(
    "/human-tasks/{continuation_id}/decisions",
    responses=HANDED_OFF,
    dependencies=[IDEMPOTENT],
    openapi_extra=PREFER_WAIT,
)
async def decide_human_task(
    request: Request,
    continuation_id: str,
    body: DecisionsRequest,
    caller: Caller = Depends(caller_dep("human:write")),
) -> JSONResponse:
    """Decide several requests of one task together: all are checked, then written in one
    transaction (none when one is refused); the run continues once none is pending, as
    after a resume (``200``, or ``202`` where workers run)."""
    limits = request.app.state.settings.limits
    check_limits(body, limits)
    for item in body.decisions:
        check_limits(item, limits)
    annotate(request, continuation_id=continuation_id)
    result = await run_in_threadpool(
        caller.manager.decide,
        continuation_id,
        [Decision(d.request_id, d.decision, d.content, d.selected_option) for d in body.decisions],
        actor=caller.principal.name,
        idempotency_key=idempotency_key(request),
        metadata=body.metadata,
    )
    annotate(request, run_id=result.run_id)
    return await continuation_answer(request, caller, result)
