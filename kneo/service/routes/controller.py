"""GitOps surface: controller status, on-demand reconcile, the Git webhook, registry reads.

The controller itself runs where it is configured (``kneo controller run``, or an embedder
passing ``create_app(controller=...)``); without one in this process, status is read from
the store and reconcile/webhook answer ``503 not_ready``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse

from kneo.documents import DocumentError, parse_json
from kneo.errors import InvalidRequest, NotReady
from kneo.names import check_name
from kneo.platform.registry import (
    bundle_view,
    controller_status_view,
    registry_revisions,
)
from kneo.service.auth import Principal, require_scope
from kneo.service.dependencies import store_dep
from kneo.service.pagination import CURSOR, INCLUDE, keyset_params, list_cap

if TYPE_CHECKING:
    from kneo.store import Store

router = APIRouter()


def _controller(request: Request) -> Any:
    controller = getattr(request.app.state, "controller", None)
    if controller is None:
        raise NotReady("no GitOps controller runs in this service process", check="controller")
    return controller


@router.get(
    "/controller/status",
    tags=["controller"],
    dependencies=[Depends(require_scope("registry:read"))],
)
def controller_status(request: Request, store: Store = Depends(store_dep)) -> dict[str, Any]:
    """What the controller last fetched, applied and failed on, and who leads."""
    return controller_status_view(store, getattr(request.app.state, "controller", None))


@router.post("/controller/reconcile", tags=["controller"])
def controller_reconcile(
    request: Request,
    principal: Principal = Depends(require_scope("controller:write")),
    store: Store = Depends(store_dep),
) -> dict[str, Any]:
    """Fetch, verify, plan and apply once, now; answers with the reconcile result."""
    result = _controller(request).reconcile_once()
    store.add_audit(
        "controller.reconcile_requested", actor=principal.name, payload={"ok": bool(result.ok)}
    )
    return dict(result.to_dict())


@router.post("/controller/webhook", tags=["controller"], status_code=202)
async def controller_webhook(
    request: Request,
    x_github_event: str | None = Header(None),
    x_hub_signature_256: str | None = Header(None),
) -> JSONResponse:
    """Git push webhook (``X-Hub-Signature-256`` over the raw body, not an API key)."""
    from kneo.controller.watch import trigger, verify_github_signature

    controller = _controller(request)
    env_name = getattr(controller.config, "webhook_secret_env", None)
    secret = request.app.state.settings.secret(env_name) if env_name else None
    body = await request.body()
    verify_github_signature(secret or "", body, x_hub_signature_256)
    try:
        payload = parse_json(body, source="webhook body") if body else {}
    except DocumentError as exc:
        raise InvalidRequest(f"webhook body is not JSON: {exc.message}") from None
    return JSONResponse(trigger(controller, x_github_event, payload), status_code=202)


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
    store: Store = Depends(store_dep),
) -> dict[str, Any]:
    """Bundle revisions (active ones by default; ``status=all`` for every revision) by
    bundle, environment and revision; paged by ``cursor``, ``total`` with
    ``include=counts``."""
    if environment is not None:
        check_name(environment, kind="environment")
    return registry_revisions(
        store,
        environment,
        None if status == "all" else status,
        limit=list_cap(request, limit),
        cursor=cursor or None,
        counts=keyset_params(request, 0, include),
    )


@router.get(
    "/registry/bundles/{bundle}/{environment}",
    tags=["registry"],
    dependencies=[Depends(require_scope("registry:read"))],
)
def get_registry_bundle(
    bundle: str, environment: str, include_spec: bool = False, store: Store = Depends(store_dep)
) -> dict[str, Any]:
    """One bundle in one environment: active revision, history and status conditions."""
    check_name(bundle, kind="bundle name", field="bundle")
    check_name(environment, kind="environment")
    return bundle_view(store, bundle, environment, include_spec=include_spec)
