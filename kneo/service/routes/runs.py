"""``/v1/runs`` and ``/v1/specs/run``: create, list, inspect, cancel, continue and stream runs."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Body, Depends, Header, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from kneo.errors import InvalidRequest
from kneo.platform import PlatformManager, RunQuery, bundles
from kneo.platform.events import OPT_IN
from kneo.platform.preparation import RunRequest
from kneo.policy.check import check_spec
from kneo.redaction import shows_personal_data
from kneo.service.auth import require_scope
from kneo.service.continuations import HANDED_OFF, PREFER_WAIT, continuation_answer
from kneo.service.dependencies import Caller, caller_dep, manager_dep
from kneo.service.event_stream import event_position, run_event_stream
from kneo.service.idempotency import IDEMPOTENT, body_hash, run_idempotent
from kneo.service.middleware import annotate
from kneo.service.pagination import PageParams, listing, paging
from kneo.service.query_params import StrictQueryRoute
from kneo.service.run_filters import run_filter
from kneo.service.schemas import ContinueRequest, CreateRunRequest, check_limits
from kneo.service.spec_source import confined_spec_path, registries
from kneo.spec.loader import load_spec_data

if TYPE_CHECKING:
    from kneo.platform.results import RunResult

router = APIRouter(tags=["runs"], route_class=StrictQueryRoute)


def _start_run(
    request: Request, body: CreateRunRequest, manager: PlatformManager, caller: Caller
) -> tuple[int, dict[str, Any]]:
    """Create (and unless ``async_mode``, execute) a run; returns ``(status, body)``. Whether
    it may start is the platform's admission gate's call (``kneo.platform.admission``)."""
    actor = caller.principal.name
    check_limits(body, request.app.state.settings.limits)
    if body.bundle is not None:
        for name in ("overrides", "skills"):
            if getattr(body, name):
                raise InvalidRequest(
                    f"a bundle run takes no {name}: it runs the approved revision as signed",
                    field=name,
                )
        result = bundles.run_bundle(
            manager,
            bundle=body.bundle,
            environment=body.environment or "",
            input_text=body.input,
            target=body.target,
            async_mode=body.async_mode,
            timeout_seconds=body.timeout_seconds,
            metadata=body.metadata,
            actor=actor,
            session_id=body.session_id,
        )
        return _answer(request, result, body.async_mode, caller)
    spec_path: str | None = None
    if body.spec_path is not None:
        project = manager.project
        root = project.root if project is not None else Path.cwd()
        spec_path = str(confined_spec_path(body.spec_path, request.app.state.settings, root))
    run = RunRequest(
        input_text=body.input,
        spec_path=spec_path,
        spec=body.spec,
        target=body.target,
        environment=body.environment,
        overrides=body.overrides,
        metadata=body.metadata,
        actor=actor,
        timeout_seconds=body.timeout_seconds,
        origin="inline" if body.spec is not None else "spec",
        skills=body.skills,
        session_id=body.session_id,
    )
    result = manager.start_run(run) if body.async_mode else manager.run(run)
    return _answer(request, result, body.async_mode, caller)


def _answer(
    request: Request, result: RunResult, async_mode: bool, caller: Caller
) -> tuple[int, dict[str, Any]]:
    annotate(request, run_id=result.run_id, continuation_id=result.continuation_id)
    show = shows_personal_data(caller.principal.scopes)
    return (202 if async_mode else 200), result.to_dict(show_personal=show)


def _create(
    request: Request, body: CreateRunRequest, caller: Caller, operation: str
) -> JSONResponse:
    manager, actor = caller.manager, caller.principal.name
    return run_idempotent(
        request,
        manager,
        operation=operation,
        actor=actor,
        request_hash=lambda: body_hash(body),
        call=lambda: _start_run(request, body, manager, caller),
    )


@router.post(
    "/runs",
    status_code=200,
    responses={202: {"description": "Queued (async_mode)"}},
    dependencies=[IDEMPOTENT],
)
def create_run(
    request: Request, body: CreateRunRequest, caller: Caller = Depends(caller_dep("runs:write"))
) -> JSONResponse:
    """Create a run; sync runs answer when the run finishes or pauses."""
    return _create(request, body, caller, "runs.create")


@router.post("/specs/run", tags=["specs"], status_code=200, dependencies=[IDEMPOTENT])
def run_spec(
    request: Request, body: CreateRunRequest, caller: Caller = Depends(caller_dep("runs:write"))
) -> JSONResponse:
    """Run a spec (a path on the server or an inline document)."""
    return _create(request, body, caller, "specs.run")


@router.get("/runs", dependencies=[Depends(require_scope("runs:read"))])
def list_runs(
    filters: RunQuery = Depends(run_filter),
    page: PageParams = Depends(listing(("created_at", "updated_at", "status"), "created_at")),
    manager: PlatformManager = Depends(manager_dep),
) -> dict[str, Any]:
    """Runs, filtered by status, session, workflow, error, creation time and words, sorted;
    paged by ``cursor`` (flat however deep) or a bounded ``offset``; ``total`` counted up to
    the count cap past the page."""
    query = replace(
        filters, limit=page.limit, offset=page.offset, sort_by=page.sort_by,
        sort_order=page.sort_order, cursor=page.cursor,
    )  # fmt: skip
    return {**manager.list_runs(query), "window": page.window}


@router.get("/runs/{run_id}")
def get_run(
    request: Request,
    run_id: str,
    include: str | None = Query(
        None,
        description="``conversation``: the agents' conversations (messages, tool calls and "
        "their results) and the decisions taken, as ``conversations`` and ``decisions``.",
    ),
    caller: Caller = Depends(caller_dep("runs:read")),
) -> dict[str, Any]:
    """A run's status, position and outcome; with ``include=conversation`` what its agents
    said and did."""
    if include not in (None, "", "conversation"):
        raise InvalidRequest(f"include must be 'conversation', got {include!r}", field="include")
    annotate(request, run_id=run_id)
    show = shows_personal_data(caller.principal.scopes)
    return dict(
        caller.manager.get_run(
            run_id, show_personal=show, include_conversation=include == "conversation"
        )
    )


@router.post("/runs/{run_id}/cancel")
def cancel_run(
    request: Request, run_id: str, caller: Caller = Depends(caller_dep("runs:write"))
) -> dict[str, Any]:
    """Cancel a queued, running or paused run (cooperative for a step in flight)."""
    annotate(request, run_id=run_id)
    return caller.manager.cancel(run_id, actor=caller.principal.name).to_dict()


@router.get("/runs/{run_id}/policy-report")
def run_policy_report(
    request: Request, run_id: str, caller: Caller = Depends(caller_dep("specs:read"))
) -> dict[str, Any]:
    """The governance report of the spec this run was started with."""
    annotate(request, run_id=run_id)
    run = caller.manager.get_run_record(run_id)
    if not run.spec:
        raise InvalidRequest(f"run {run_id} carries no spec metadata", run_id=run_id)
    tools, runtimes = registries(caller.manager)
    spec = load_spec_data(dict(run.spec), source=f"run {run_id}")
    report = check_spec(
        spec,
        env=run.environment,
        context=getattr(caller.manager, "project", None),
        tool_registry=tools,
        runtime_registry=runtimes,
        policy=caller.manager.stored_policy(run.environment),
    )
    caller.manager.add_audit(
        "spec.policy_reported",
        actor=caller.principal.name,
        run_id=run_id,
        payload={"source": "run", "valid": report.valid},
    )
    return {"valid": report.valid, "report": report.report}


@router.get("/runs/{run_id}/recovery", dependencies=[Depends(require_scope("runs:read"))])
def run_recovery(
    request: Request, run_id: str, manager: PlatformManager = Depends(manager_dep)
) -> dict[str, Any]:
    """Completed steps, the failed step and whether the run can continue."""
    annotate(request, run_id=run_id)
    return manager.recovery(run_id)


@router.get("/runs/{run_id}/graph", dependencies=[Depends(require_scope("runs:read"))])
def run_graph(
    request: Request, run_id: str, manager: PlatformManager = Depends(manager_dep)
) -> dict[str, Any]:
    """The run's workflow as nodes and edges (from its own spec), each node's visits and
    state, the edges taken, the ``visited`` nodes and the ``current`` one (executing,
    waiting for a person, or where it failed)."""
    annotate(request, run_id=run_id)
    return manager.run_graph(run_id)


@router.get("/runs/{run_id}/replay", dependencies=[Depends(require_scope("runs:read"))])
def run_replay(
    request: Request, run_id: str, manager: PlatformManager = Depends(manager_dep)
) -> dict[str, Any]:
    """A compact checkpoint timeline plus the recovery context."""
    annotate(request, run_id=run_id)
    return manager.replay(run_id)


@router.post(
    "/runs/{run_id}/continue",
    responses=HANDED_OFF,
    openapi_extra=PREFER_WAIT,
)
async def continue_run(
    request: Request,
    run_id: str,
    body: ContinueRequest | None = Body(None),
    caller: Caller = Depends(caller_dep("runs:write")),
) -> JSONResponse:
    """Continue an interrupted run from its last completed step boundary: within the request
    (``200``) or, where workers run, on a worker (``202`` with ``Location``, or its outcome
    if it pauses or ends within ``Prefer: wait=N`` seconds). ``metadata`` is audited.
    ``to_revision`` moves the run to other code first (audited ``run.code_moved``); a
    paused run then answers ``200``, still paused, on that code."""
    annotate(request, run_id=run_id)
    if body is not None:
        check_limits(body, request.app.state.settings.limits)
    result = await run_in_threadpool(
        caller.manager.continue_run,
        run_id,
        actor=caller.principal.name,
        metadata=body.metadata if body is not None else None,
        to_revision=body.to_revision if body is not None else None,
    )
    return await continuation_answer(request, caller, result)


@router.get("/runs/{run_id}/checkpoints", dependencies=[Depends(require_scope("runs:read"))])
def run_checkpoints(
    request: Request,
    run_id: str,
    type: str | None = None,
    include_payload: bool = False,
    page: PageParams = Depends(paging(("sequence", "created_at"), "sequence", "asc")),
    manager: PlatformManager = Depends(manager_dep),
) -> dict[str, Any]:
    """A run's checkpoints (payloads on request), paged by sequence."""
    annotate(request, run_id=run_id)
    found = manager.checkpoints(
        run_id,
        type=type,
        limit=page.limit,
        offset=page.offset,
        sort_order=page.sort_order,
        include_payload=include_payload,
    )
    items = found["checkpoints"]
    return {"run_id": run_id, "checkpoints": items, **page.metadata(len(items), found["total"])}


@router.get("/runs/{run_id}/checkpoints/diff", dependencies=[Depends(require_scope("runs:read"))])
def run_checkpoint_diff(
    request: Request,
    run_id: str,
    from_sequence: int | None = Query(None, ge=1),
    to_sequence: int | None = Query(None, ge=1),
    manager: PlatformManager = Depends(manager_dep),
) -> dict[str, Any]:
    """Added, removed and changed paths between two checkpoints (default: latest two)."""
    annotate(request, run_id=run_id)
    return manager.checkpoint_diff(run_id, from_sequence=from_sequence, to_sequence=to_sequence)


@router.get("/runs/{run_id}/trace", dependencies=[Depends(require_scope("runs:read"))])
def run_trace(
    request: Request,
    run_id: str,
    event_type: str | None = None,
    # ``timestamp``: the original's name of the event time, the same order as the sequence
    page: PageParams = Depends(paging(("sequence", "created_at", "timestamp"), "sequence", "asc")),
    manager: PlatformManager = Depends(manager_dep),
) -> dict[str, Any]:
    """A run's trace events, paged by sequence."""
    annotate(request, run_id=run_id, trace_id=run_id)
    found = manager.trace(
        run_id,
        event_type=event_type,
        limit=page.limit,
        offset=page.offset,
        sort_order=page.sort_order,
    )
    events = found["events"]
    return {"run_id": run_id, "events": events, **page.metadata(len(events), found["total"])}


@router.get(
    "/runs/{run_id}/events",
    dependencies=[Depends(require_scope("runs:read"))],
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {
                "text/event-stream": {
                    "schema": {"type": "string", "description": "`id:`, `event:`, `data:` lines"}
                }
            },
            "description": "Server-sent events until the run pauses or finishes",
        }
    },
)
def run_events(
    request: Request,
    run_id: str,
    last_event_id: str | None = Header(
        None,
        alias="Last-Event-ID",
        description="Resume after this event (an `id:` this stream sent: a whole number "
        "from 0); anything else is `400 invalid_request` before the stream starts.",
    ),
    poll_seconds: float = Query(0.25, ge=0.05, le=5.0),
    include: str | None = Query(
        None,
        max_length=200,
        description="Opt-in event types to add, comma-separated: `answer.delta` (an agent's "
        "answer as it is generated, for agents with `model.stream: true`).",
    ),
    manager: PlatformManager = Depends(manager_dep),
) -> StreamingResponse:
    """Stream the run's events (:meth:`PlatformManager.events`: one vocabulary for Python and
    HTTP) as server-sent events until it pauses or finishes."""
    annotate(request, run_id=run_id)
    start = event_position(last_event_id)
    wanted = frozenset(t.strip() for t in (include or "").split(",") if t.strip())
    unknown = sorted(wanted - OPT_IN)
    if unknown:
        raise InvalidRequest(
            f"include: {unknown[0]!r} is not an opt-in event type ({', '.join(sorted(OPT_IN))})",
            field="include",
        )
    manager.get_run_record(run_id)  # 404 before the stream starts
    stream = run_event_stream(
        request, manager, run_id, after=start, wanted=wanted, poll_seconds=poll_seconds
    )
    return StreamingResponse(
        stream,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
