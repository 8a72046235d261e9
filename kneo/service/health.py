"""``/livez``, ``/healthz`` and ``/readyz``: unauthenticated, cheap, and specific on failure.

Readiness runs one check per dependency (run state store, continuation store, queue,
runtime registry, tool registry, providers, mcp) and answers ``503 not_ready`` naming every
failing check. Provider and MCP checks only look at whether the secrets listed in
``KNEO_SERV_HEALTH_PROVIDERS`` (provider names such as ``openai``, mapped to their variable
by the project's ``secrets.providers``; a variable name also works) and
``KNEO_SERV_HEALTH_MCP_SECRETS`` (``secrets.extra`` names or variable names) are set; values
are never read out.
"""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from kneo import __version__
from kneo.errors import ErrorCode
from kneo.redaction import redact_text
from kneo.service.dependencies import current_manager
from kneo.service.errors import error_headers
from kneo.service.query_params import StrictQueryRoute
from kneo.service.spec_source import registries
from kneo.spec.project_blocks import SecretsConfig

if TYPE_CHECKING:
    from collections.abc import Callable

    from starlette.applications import Starlette

    from kneo.platform.manager import PlatformManager
    from kneo.settings import Settings

_URL_CREDENTIALS = re.compile(r"://[^@/\s]+@")

router = APIRouter(tags=["health"], route_class=StrictQueryRoute)


def _check(name: str, fn: Any) -> dict[str, Any]:
    try:
        extra = fn() or {}
    except Exception as exc:  # a check never raises: it reports
        message = redact_text(_URL_CREDENTIALS.sub("://[REDACTED]@", str(exc)))[:300]
        return {"name": name, "ok": False, "error": type(exc).__name__, "message": message}
    return {"name": name, "ok": bool(extra.pop("ok", True)), **extra}


def _names(registry: Any) -> list[str]:
    names = registry.names() if hasattr(registry, "names") else list(registry)
    return sorted(str(n) for n in names)


def readiness_checks(app: Starlette) -> dict[str, dict[str, Any]]:
    """Every readiness check by name; blocking (called in a worker thread)."""
    settings = app.state.settings
    manager = current_manager(app)
    checks = _store_checks(app, manager)
    checks["runtime_registry"] = _check(
        "runtime_registry", _registry_check(manager, "runtime_registry")
    )
    checks["tool_registry"] = _check("tool_registry", _registry_check(manager, "tool_registry"))
    project = getattr(manager, "project", None)
    refs = project.config.secrets if project is not None else SecretsConfig()
    providers = {**SecretsConfig().providers, **refs.providers}  # the defaults, then the project's
    checks["providers"] = _check(
        "providers", _secrets_check(settings, settings.health_providers, providers)
    )
    checks["mcp"] = _check(
        "mcp", _secrets_check(settings, settings.health_mcp_secrets, dict(refs.extra))
    )
    return checks


def _store_checks(app: Starlette, manager: PlatformManager | None) -> dict[str, dict[str, Any]]:
    """The run state and continuation stores answer, and the queue's worker (when this
    process runs one) is alive."""
    if manager is None:
        missing = {"ok": False, "message": "no platform manager configured"}
        names = ("run_state_store", "continuation_store", "queue")
        return {name: {"name": name, **missing} for name in names}
    store = manager.store

    def ping() -> dict[str, Any]:
        store.ping()
        return {}

    def queue() -> dict[str, Any]:
        store.ping()
        worker = getattr(app.state, "worker", None)
        if worker is None:
            return {}
        alive = worker.is_alive()
        return {"ok": alive, "worker": "running" if alive else "stopped"}

    return {
        "run_state_store": _check("run_state_store", ping),
        "continuation_store": _check("continuation_store", ping),
        "queue": _check("queue", queue),
    }


def _registry_check(manager: PlatformManager | None, attr: str) -> Callable[[], dict[str, Any]]:
    """The manager's tool or runtime registry (``attr``) and the names it holds."""

    def check() -> dict[str, Any]:
        tools, runtimes = registries(manager) if manager is not None else (None, None)
        reg = tools if attr == "tool_registry" else runtimes
        if reg is None:
            return {"ok": False, "message": f"platform manager has no {attr}"}
        names = _names(reg)
        return {"count": len(names), "names": names}

    return check


def _secrets_check(
    settings: Settings, configured: tuple[str, ...], names: dict[str, str]
) -> Callable[[], dict[str, Any]]:
    """Each entry is a reference name from ``names`` (a provider, an ``extra`` secret) or
    else a variable name; ``missing`` lists entries whose variable is unset."""

    def check() -> dict[str, Any]:
        variables = {entry: names.get(entry, entry) for entry in configured}
        missing = [e for e, var in variables.items() if not settings.secret(var)]
        out: dict[str, Any] = {"configured": list(configured)}
        if missing:
            out.update(
                ok=False,
                missing=missing,
                message="missing: "
                + ", ".join(e if variables[e] == e else f"{e} ({variables[e]})" for e in missing),
            )
        return out

    return check


@router.get("/livez", summary="Process liveness")
async def livez() -> dict[str, Any]:
    """The process is up and serving."""
    return {"ok": True, "metadata": {}}


@router.get("/healthz", summary="Lightweight API health")
async def healthz(request: Request) -> dict[str, Any]:
    """The API answers; no dependency is touched."""
    manager = current_manager(request.app)
    return {
        "ok": True,
        "metadata": {
            "service": "kneo",
            "version": __version__,
            "manager": type(manager).__name__ if manager is not None else None,
            "auth_enabled": request.app.state.authenticator.enabled,
        },
    }


@router.get(
    "/readyz",
    summary="Readiness of every dependency",
    responses={503: {"description": "A dependency is not ready (error envelope)."}},
)
async def readyz(request: Request) -> JSONResponse:
    """200 when every check passes, else 503 ``not_ready`` naming the failing checks."""
    checks = await asyncio.to_thread(readiness_checks, request.app)
    failed = [name for name, check in checks.items() if not check["ok"]]
    manager = current_manager(request.app)
    metadata = {
        "ready": not failed,
        "manager": type(manager).__name__ if manager is not None else None,
        "checks": checks,
    }
    if not failed:
        return JSONResponse({"ok": True, "metadata": metadata})
    body = {
        "error": ErrorCode.not_ready,
        "message": "Service is not ready; failing checks: " + ", ".join(failed),
        "failed_checks": failed,
        "ok": False,
        "metadata": metadata,
    }
    request_id = request.scope.get("state", {}).get("request_id")
    if request_id:
        body["request_id"] = request_id
    return JSONResponse(body, status_code=503, headers=error_headers(503, ErrorCode.not_ready))
