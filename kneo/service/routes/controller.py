"""GitOps surface: controller status, on-demand reconcile, the Git webhook, registry reads.

The controller itself runs where it is configured (``kneo controller run``, or an embedder
passing ``create_app(controller=...)``); without one in this process, status is read from
the store and reconcile/webhook answer ``503 not_ready``.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse

from kneo.clock import utc_iso
from kneo.documents import DocumentError, parse_json
from kneo.errors import InvalidRequest, NotFound, NotReady
from kneo.names import check_name
from kneo.service.auth import Principal, require_scope
from kneo.service.dependencies import store_dep

router = APIRouter()


def _controller(request: Request) -> Any:
    controller = getattr(request.app.state, "controller", None)
    if controller is None:
        raise NotReady("no GitOps controller runs in this service process", check="controller")
    return controller


def revision_dict(revision: Any, *, include_spec: bool = False) -> dict[str, Any]:
    data = {k: utc_iso(v) if isinstance(v, datetime) else v for k, v in asdict(revision).items()}
    if not include_spec:
        data.pop("spec", None)
    return data


@router.get(
    "/controller/status",
    tags=["controller"],
    dependencies=[Depends(require_scope("registry:read"))],
)
def controller_status(request: Request, store: Any = Depends(store_dep)) -> dict[str, Any]:
    """What the controller last fetched, applied and failed on, and who leads."""
    controller = getattr(request.app.state, "controller", None)
    if controller is not None:
        return dict(controller.status())
    from kneo.controller.controller import status_dict

    stored = store.get_controller_status()
    return status_dict(stored, store.get_lock("controller:default"), None)


@router.post("/controller/reconcile", tags=["controller"])
def controller_reconcile(
    request: Request,
    principal: Principal = Depends(require_scope("controller:write")),
    store: Any = Depends(store_dep),
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
    environment: str | None = None,
    status: str | None = "active",
    store: Any = Depends(store_dep),
) -> dict[str, Any]:
    """Bundle revisions (active ones by default; ``status=all`` for every revision)."""
    if environment is not None:
        check_name(environment, kind="environment")
    revisions = store.list_registry(environment, status=None if status == "all" else status)
    items = [revision_dict(r) for r in revisions]
    return {"revisions": items, "count": len(items), "total": len(items)}


@router.get(
    "/registry/bundles/{bundle}/{environment}",
    tags=["registry"],
    dependencies=[Depends(require_scope("registry:read"))],
)
def get_registry_bundle(
    bundle: str, environment: str, include_spec: bool = False, store: Any = Depends(store_dep)
) -> dict[str, Any]:
    """One bundle in one environment: active revision, history and status conditions."""
    check_name(bundle, kind="bundle name", field="bundle")
    check_name(environment, kind="environment")
    revisions = store.list_revisions(bundle, environment)
    if not revisions:
        raise NotFound(f"bundle {bundle!r} has no revision in {environment!r}", resource="bundle")
    active = store.get_active(bundle, environment)
    conditions = [
        {k: utc_iso(v) if isinstance(v, datetime) else v for k, v in asdict(c).items()}
        for c in store.list_conditions(bundle, environment)
    ]
    return {
        "bundle": bundle,
        "environment": environment,
        "active": revision_dict(active, include_spec=include_spec) if active else None,
        "revisions": [revision_dict(r) for r in revisions],
        "conditions": conditions,
        "suspended": store.is_suspended(bundle, environment),
    }
