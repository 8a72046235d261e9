"""GitOps surface: controller status, on-demand reconcile, the Git webhook, registry reads.

The controller runs wherever it is configured (``kneo controller run``, or next to the API
in ``kneo service serve``). These routes never call it: any replica verifies the request,
queues it in the database and the leader serves it (:mod:`kneo.platform.reconcile`), so
they work the same on every replica. ``404 controller_not_configured`` where this
deployment has no controller at all; ``503 not_ready`` while none leads.

Each acts in the request's project, on that project's source
(:func:`kneo.platform.reconcile.project_controller`). GitHub cannot send the project header,
so a project's webhook is its path form, ``/v1/projects/<name>/controller/webhook``, signed
with the secret its definition names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Body, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse

from kneo.controller.watch import verify_github_signature
from kneo.documents import parse_json
from kneo.errors import ErrorCode, InvalidRequest
from kneo.names import check_name
from kneo.platform import ControllerRequest, PlatformManager, RegistryQuery
from kneo.platform.reconcile import app_controller, request_view
from kneo.projects import DEFAULT_PROJECT, project_not_found
from kneo.service.auth import Principal, requested_project, require_scope
from kneo.service.dependencies import manager_dep
from kneo.service.pagination import CURSOR, INCLUDE, keyset_params, list_cap
from kneo.service.query_params import StrictQueryRoute
from kneo.service.schemas import BlockRequest, ReasonRequest, RollbackRequest

router = APIRouter(route_class=StrictQueryRoute)

#: The longest ``POST /v1/controller/reconcile`` may wait for its pass (``wait`` seconds).
MAX_WAIT_SECONDS = 120.0
#: Request ids are 64-bit integers in both databases.
MAX_REQUEST_ID = 2**63 - 1


def _controller(request: Request, manager: PlatformManager) -> tuple[Any, Any]:
    """(the request's project's source configuration, its controller in this process),
    either ``None``."""
    project = getattr(request.state, "project", None) or DEFAULT_PROJECT
    return app_controller(request.app.state, project, manager.project)


def _checked(bundle: str, environment: str) -> None:
    """A bundle route's path names a valid bundle and environment."""
    check_name(bundle, kind="bundle name", field="bundle")
    check_name(environment, kind="environment")


async def webhook_manager(request: Request) -> PlatformManager:
    """The manager of the project a webhook names (its path form; ``default`` otherwise):
    a webhook carries a signature, not a key, so no grant narrows it."""
    request.state.project = requested_project(request) or DEFAULT_PROJECT
    return await manager_dep(request)


@router.get(
    "/controller/status",
    tags=["controller"],
    dependencies=[Depends(require_scope("registry:read"))],
)
def controller_status(
    request: Request, manager: PlatformManager = Depends(manager_dep)
) -> dict[str, Any]:
    """Who leads, what its last pass fetched, applied and failed on, and the reconcile
    requests waiting for it: the same on every replica."""
    config, controller = _controller(request, manager)
    return manager.controller_status(config, controller)


@router.post("/controller/reconcile", tags=["controller"])
def controller_reconcile(
    request: Request,
    wait: float = Query(
        30.0,
        ge=0,
        le=MAX_WAIT_SECONDS,
        description="Seconds to wait for the pass: 200 with its result when it ends in time, "
        "else 202 with the request to follow at /v1/controller/requests/{request_id}.",
    ),
    principal: Principal = Depends(require_scope("controller:write")),
    manager: PlatformManager = Depends(manager_dep),
) -> JSONResponse:
    """Ask the leading controller (wherever it runs) for a pass now: fetch, verify, plan and
    apply; answers with the pass's result."""
    config, controller = _controller(request, manager)
    return _served(manager.request_reconcile(config, controller, actor=principal.name, wait=wait))


@router.post("/controller/plan", tags=["controller"])
def controller_plan(
    request: Request,
    wait: float = Query(
        30.0,
        ge=0,
        le=MAX_WAIT_SECONDS,
        description="Seconds to wait for the dry run: 200 with its result when it ends in "
        "time, else 202 with the request to follow at /v1/controller/requests/{request_id}.",
    ),
    principal: Principal = Depends(require_scope("controller:write")),
    manager: PlatformManager = Depends(manager_dep),
) -> JSONResponse:
    """What a reconcile of the watched branch's current commit would do, from the leading
    controller (wherever it runs): a dry run that writes nothing. It costs the leader a full
    pass's verification, so it takes the reconcile's scope."""
    config, controller = _controller(request, manager)
    return _served(manager.request_plan(config, controller, actor=principal.name, wait=wait))


def _served(served: ControllerRequest) -> JSONResponse:
    """A queued pass's answer: 200 with its result when it ended in time (as the reconcile
    route always answered), else 202 with the request to follow."""
    body = request_view(served)
    if served.result is not None:
        body = {**served.result, **body}
    return JSONResponse(body, status_code=200 if served.status == "done" else 202)


@router.get(
    "/controller/requests/{request_id}",
    tags=["controller"],
    dependencies=[Depends(require_scope("registry:read"))],
)
def controller_request(
    request_id: int = Path(..., ge=1, le=MAX_REQUEST_ID),
    manager: PlatformManager = Depends(manager_dep),
) -> dict[str, Any]:
    """A queued reconcile request: ``queued``, ``running`` or ``done`` with its pass's result."""
    return manager.controller_request(request_id)


@router.post("/controller/webhook", tags=["controller"], status_code=202)
async def controller_webhook(
    request: Request,
    x_github_event: str | None = Header(None),
    x_hub_signature_256: str | None = Header(None),
    x_github_delivery: str | None = Header(None),
    content_type: str | None = Header(None),
    manager: PlatformManager = Depends(webhook_manager),
) -> JSONResponse:
    """Git push webhook (``X-Hub-Signature-256`` over the raw body, not an API key), taken by
    any replica and queued for the leading controller. Either content type GitHub offers:
    ``application/json``, or ``application/x-www-form-urlencoded`` (its default) with the
    JSON in one ``payload`` field."""
    from starlette.concurrency import run_in_threadpool

    body = await request.body()
    hook = _Hook(x_github_event, x_hub_signature_256, x_github_delivery, content_type)
    answer = await run_in_threadpool(_webhook, request, manager, body, hook)
    return JSONResponse(answer, status_code=202)


@dataclass(frozen=True)
class _Hook:
    """The headers a webhook is judged by."""

    event: str | None
    signature: str | None
    delivery: str | None
    content_type: str | None


def _webhook(
    request: Request, manager: PlatformManager, body: bytes, hook: _Hook
) -> dict[str, Any]:
    """Verify, parse and queue a webhook (database calls: run in a worker thread)."""
    config, controller = _controller(request, manager)
    project = request.state.project
    if project != DEFAULT_PROJECT and not getattr(config, "repo", None):
        # to a caller without a key, a project without a source is no project at all
        raise project_not_found(project)
    name = manager.webhook_controller(config, controller)
    settings = request.app.state.settings
    variable = manager.webhook_secret_variable(config)
    if variable:
        secret = settings.secret(variable)
    else:  # the host's shared secret is the default project's only
        secret = settings.webhook_secret if project == DEFAULT_PROJECT else None
    verify_github_signature(secret or "", body, hook.signature)  # the raw body, as sent
    payload = webhook_payload(body, hook.content_type)
    event, delivery = hook.event, hook.delivery
    if event == "ping":
        return {"accepted": False, "event": "ping"}
    ref = payload.get("ref") if isinstance(payload, dict) else None
    detail = {"event": event or "push", "ref": ref if isinstance(ref, str) else None}
    if delivery:
        detail["delivery"] = delivery[:128]
    queued = manager.queue_webhook(config, controller, name, detail)
    return {"accepted": True, **detail, "request_id": queued.id}


#: The form fields a form-encoded webhook may hold: GitHub sends the one.
_FORM_FIELDS = 16


def webhook_payload(body: bytes, content_type: str | None) -> Any:
    """The webhook's JSON document, read one way: the body itself, or for
    ``application/x-www-form-urlencoded`` its single ``payload`` field. A form that repeats
    ``payload`` (two readings) is ``E_DUPLICATE_KEY``; a JSON object that repeats a member is
    too (:func:`kneo.documents.parse_json`)."""
    if not body:
        return {}
    media = (content_type or "").split(";", 1)[0].strip().lower()
    text: bytes | str = body
    if media == "application/x-www-form-urlencoded":
        text = _form_payload(body)
    return parse_json(text, source="webhook payload")  # E_JSON, E_DUPLICATE_KEY, limits


def _form_payload(body: bytes) -> str:
    """The ``payload`` field of a form-encoded body (UTF-8 after percent-decoding)."""
    try:
        fields = parse_qsl(
            body.decode("ascii"),
            keep_blank_values=True,
            strict_parsing=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=_FORM_FIELDS,
        )
    except (UnicodeDecodeError, ValueError) as exc:
        reason = exc.reason if isinstance(exc, UnicodeDecodeError) else str(exc)
        raise InvalidRequest(
            f"webhook body is not a URL-encoded form: {reason}", field="payload"
        ) from None
    names = [key for key, _ in fields]
    if names.count("payload") > 1:
        raise InvalidRequest(
            f"webhook form repeats the payload field ({names.count('payload')} times): "
            "one reading only",
            code=ErrorCode.E_DUPLICATE_KEY,
            field="payload",
        )
    if names != ["payload"]:
        raise InvalidRequest(
            "a form-encoded webhook holds exactly one field, payload (GitHub's shape); "
            f"got {', '.join(sorted(set(names))) or 'none'}",
            field="payload",
        )
    return fields[0][1]


@router.get(
    "/registry/bundles", tags=["registry"], dependencies=[Depends(require_scope("registry:read"))]
)
def list_registry(
    request: Request,
    environment: str | None = None,
    status: str | None = "active",
    limit: int | None = Query(None, ge=1, description="Page size (capped)."),
    cursor: str | None = CURSOR,
    include: str | None = INCLUDE,
    manager: PlatformManager = Depends(manager_dep),
) -> dict[str, Any]:
    """Bundle revisions (active ones by default; ``status=all`` for every revision) by
    bundle, environment and revision; paged by ``cursor``; ``total`` counted up to the count
    cap."""
    if environment is not None:
        check_name(environment, kind="environment")
    keyset_params(request, 0, include)  # validates include
    return manager.registry_bundles(
        RegistryQuery(
            environment=environment,
            status=None if status == "all" else status,
            limit=list_cap(request, limit),
            cursor=cursor or None,
            count=True,
        )
    )


@router.get(
    "/registry/bundles/{bundle}/{environment}",
    tags=["registry"],
    dependencies=[Depends(require_scope("registry:read"))],
)
def get_registry_bundle(
    bundle: str,
    environment: str,
    include_spec: bool = False,
    manager: PlatformManager = Depends(manager_dep),
) -> dict[str, Any]:
    """One bundle in one environment: active revision, history and status conditions."""
    _checked(bundle, environment)
    return manager.registry_bundle(bundle, environment, include_spec=include_spec)


@router.get(
    "/registry/bundles/{bundle}/{environment}/diff",
    tags=["registry"],
    dependencies=[Depends(require_scope("registry:read"))],
)
def diff_registry_bundle(
    bundle: str,
    environment: str,
    from_revision: int = Query(..., alias="from", ge=1, le=2**31 - 1),
    to_revision: int = Query(..., alias="to", ge=1, le=2**31 - 1),
    manager: PlatformManager = Depends(manager_dep),
) -> dict[str, Any]:
    """Two revisions of the bundle here: a unified diff of their specs, and their digest,
    commit and status where they differ."""
    _checked(bundle, environment)
    return manager.registry_diff(
        bundle, environment, from_revision=from_revision, to_revision=to_revision
    )


# --------------------------------------------------------------------------- day two
# Registry writes people make; each audited with the calling key's name (its person).


@router.get(
    "/registry/bundles/{bundle}/{environment}/graph",
    tags=["registry"],
    dependencies=[Depends(require_scope("registry:read"))],
)
def graph_registry_bundle(
    bundle: str, environment: str, manager: PlatformManager = Depends(manager_dep)
) -> dict[str, Any]:
    """The workflow graph of the bundle's active revision here, by name: its signed spec
    as nodes and edges (``POST /v1/specs/graph``'s shape, with ``revision`` and ``digest``)."""
    _checked(bundle, environment)
    return manager.registry_graph(bundle, environment)


_KEY = "/registry/bundles/{bundle}/{environment}"


@router.post(_KEY + "/rollback", tags=["registry"])
def rollback_bundle(
    bundle: str,
    environment: str,
    body: RollbackRequest,
    principal: Principal = Depends(require_scope("controller:write")),
    manager: PlatformManager = Depends(manager_dep),
) -> JSONResponse:
    """Put revision ``to`` back in force now (a new revision copying it) and pin it, if its
    digest still verifies against today's trust; ``202`` with the approval task where the
    environment requires approval."""
    _checked(bundle, environment)
    data = manager.rollback_bundle(
        bundle, environment, to=body.to, actor=principal.name, reason=body.reason
    )
    return JSONResponse(data, status_code=202 if data["status"] == "awaiting_approval" else 200)


@router.post(_KEY + "/pin", tags=["registry"])
def pin_bundle(
    bundle: str,
    environment: str,
    body: ReasonRequest | None = Body(None),
    principal: Principal = Depends(require_scope("controller:write")),
    manager: PlatformManager = Depends(manager_dep),
) -> dict[str, Any]:
    """Hold the bundle at its active revision: nothing else is promoted until unpinned."""
    _checked(bundle, environment)
    reason = body.reason if body is not None else None
    return manager.pin_bundle(bundle, environment, actor=principal.name, reason=reason)


@router.delete(_KEY + "/pin", tags=["registry"])
def unpin_bundle(
    bundle: str,
    environment: str,
    principal: Principal = Depends(require_scope("controller:write")),
    manager: PlatformManager = Depends(manager_dep),
) -> dict[str, Any]:
    """Lift the pin; the controller promotes what Git asks for on its next pass."""
    _checked(bundle, environment)
    return manager.unpin_bundle(bundle, environment, actor=principal.name)


@router.post(_KEY + "/suspend", tags=["registry"])
def suspend_bundle(
    bundle: str,
    environment: str,
    body: ReasonRequest | None = Body(None),
    principal: Principal = Depends(require_scope("controller:write")),
    manager: PlatformManager = Depends(manager_dep),
) -> dict[str, Any]:
    """Make the controller leave the bundle alone here (as ``kneo controller suspend``)."""
    _checked(bundle, environment)
    reason = body.reason if body is not None else None
    return manager.suspend_bundle(bundle, environment, actor=principal.name, reason=reason)


@router.post(_KEY + "/resume", tags=["registry"])
def resume_bundle(
    bundle: str,
    environment: str,
    principal: Principal = Depends(require_scope("controller:write")),
    manager: PlatformManager = Depends(manager_dep),
) -> dict[str, Any]:
    """Let the controller manage the bundle here again."""
    _checked(bundle, environment)
    return manager.resume_bundle(bundle, environment, actor=principal.name)


@router.get(
    "/registry/blocked-digests",
    tags=["registry"],
    dependencies=[Depends(require_scope("registry:read"))],
)
def list_blocked_digests(manager: PlatformManager = Depends(manager_dep)) -> dict[str, Any]:
    """Digests never promoted again until unblocked, with why and by whom."""
    items = manager.blocked_digests()
    return {"blocked": items, "count": len(items)}


@router.post("/registry/blocked-digests", tags=["registry"])
def block_digest(
    body: BlockRequest,
    principal: Principal = Depends(require_scope("controller:write")),
    manager: PlatformManager = Depends(manager_dep),
) -> dict[str, Any]:
    """Never promote the digest again, in any environment, until unblocked."""
    return manager.block_digest(body.digest, actor=principal.name, reason=body.reason)


@router.delete("/registry/blocked-digests/{digest}", tags=["registry"])
def unblock_digest(
    digest: str,
    principal: Principal = Depends(require_scope("controller:write")),
    manager: PlatformManager = Depends(manager_dep),
) -> dict[str, Any]:
    """Let the digest be promoted again."""
    return manager.unblock_digest(digest, actor=principal.name)
