"""``create_app``: the FastAPI application behind ``kneo service serve``.

Composition only: settings and auth are resolved here (startup fails with one clear line
when auth is on without keys), the platform manager comes from
:mod:`kneo.service.dependencies`, routers are mounted under ``/v1`` and again at their
legacy unversioned paths (hidden from OpenAPI), and the in-process queue worker is started
and stopped with the app's lifespan.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from kneo import __version__, metrics, tracing
from kneo.logs import get_logger, quiet_http_clients
from kneo.service import dependencies
from kneo.service.auth import Authenticator
from kneo.service.errors import ERROR_RESPONSE_SCHEMA, install_error_handlers
from kneo.service.health import router as health_router
from kneo.service.metrics import router as metrics_router
from kneo.service.middleware import LOGGER_NAME, RequestContextMiddleware
from kneo.service.operation_ids import operation_id
from kneo.service.responses import document_responses
from kneo.service.throttle import SignInThrottle
from kneo.settings import Settings

if TYPE_CHECKING:
    from kneo.platform.manager import PlatformManager

log = get_logger(LOGGER_NAME)

#: SIGTERM under ``kneo service serve``: the listener closes at once; requests in flight get
#: ``REQUEST_DRAIN_SECONDS``; then runs the in-process worker is executing get
#: ``WORKER_DRAIN_SECONDS`` before they are handed over (lease released: another process
#: continues them from their last step boundary); whatever hangs, the process is gone
#: ``SHUTDOWN_LIMIT_SECONDS`` after the signal.
REQUEST_DRAIN_SECONDS = 10
WORKER_DRAIN_SECONDS = 10.0
SHUTDOWN_LIMIT_SECONDS = 30.0

_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    for code, description in (
        (400, "Invalid request"),
        (401, "Missing or invalid API key"),
        (403, "The API key lacks the required scope"),
        (404, "Not found"),
        (409, "Conflict (idempotency key, lock, already resolved)"),
        (413, "Payload too large"),
        (422, "Validation error"),
        (429, "Too many failed sign-in attempts from this client (Retry-After)"),
        (503, "Not ready"),
    )
}


def configure_logging(settings: Settings) -> None:
    """JSON request records on ``kneo_serv.service`` at ``KNEO_SERV_LOG_LEVEL``, and HTTP
    client libraries quiet (idempotent)."""
    quiet_http_clients()
    logger = get_logger(LOGGER_NAME)
    logger.setLevel(getattr(logging, settings.log_level, logging.INFO))
    if not any(getattr(h, "_kneo", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._kneo = True  # type: ignore[attr-defined]
        logger.addHandler(handler)


def _routers() -> list[Any]:
    """API routers, busiest first: FastAPI matches a request against the routes in order
    (no two routes here overlap, so the order only decides how many are tried first)."""
    from kneo.service.routes import audit, notifications, security

    routers = []
    for name in ("runs", "human", "specs", "controller"):
        try:
            module = __import__(f"kneo.service.routes.{name}", fromlist=["router"])
        except ImportError:  # a route group whose platform piece has not landed
            continue
        routers.append(module.router)
    return [*routers, audit.router, security.router, notifications.router]


def create_app(
    configure_default_manager: bool = True,
    *,
    settings: Settings | None = None,
    manager: PlatformManager | None = None,
    start_worker: bool | None = None,
    controller: Any = None,
    controller_config: Any = None,
    run_controller: bool = False,
    mcp: bool = False,
) -> FastAPI:
    """Build the service app.

    ``manager`` (or one installed with ``set_platform_manager``) wins; otherwise, with
    ``configure_default_manager``, the default platform is built at startup from settings.
    ``start_worker`` (default: whether the app builds its own manager) runs the in-process
    queue worker for the app's lifetime. ``controller`` (a ``kneo.controller.Controller``)
    is woken at once by reconcile requests and promotion decisions taken here;
    ``run_controller`` runs its leader-elected loop in this process. ``controller_config``
    (default: the controller's) names the controller the reconcile and webhook routes queue
    requests for, and its webhook secret variable, when it runs in another process.
    ``mcp`` serves the MCP tools at ``/mcp`` (:mod:`kneo.service.mcp`).
    """
    settings = settings or Settings.from_env()
    authenticator = Authenticator.from_settings(settings)  # fails fast: auth on, no keys
    lifespan = _lifespan(
        settings,
        build_manager=configure_default_manager,
        run_worker=configure_default_manager if start_worker is None else start_worker,
        controller=controller,
        run_controller=run_controller,
    )
    app = FastAPI(
        title="Kneo service",
        version=__version__,
        description="Run AI agent workflows with durable human approval. "
        "Authenticate with `Authorization: Bearer <key>` or `X-API-Key: <key>`.",
        lifespan=lifespan,
        generate_unique_id_function=operation_id,  # runs-list, not list_runs_v1_runs_get
        # FastAPI's own OpenTelemetry (newer releases; an unknown keyword to older ones)
        # records validation inputs and exception messages as they are: off. The HTTP span
        # is the request middleware's, under the one redaction policy (kneo.tracing).
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.state.settings = settings
    app.state.authenticator = authenticator
    app.state.sign_in_throttle = SignInThrottle(
        settings.auth_max_failures, settings.auth_failure_window_seconds
    )
    app.state.manager = manager
    app.state.worker = None
    app.state.controller = controller
    app.state.controller_config = controller_config or getattr(controller, "config", None)
    configure_logging(settings)
    metrics.enable()
    tracing.configure(settings)
    install_error_handlers(app)
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=settings.limits.max_body_bytes,
        request_logs=settings.request_logs,
    )
    _mount(app, settings, mcp=mcp)
    _document(app)
    return app


Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def _lifespan(
    settings: Settings,
    *,
    build_manager: bool,
    run_worker: bool,
    controller: Any,
    run_controller: bool,
) -> Lifespan:
    """What runs for the app's lifetime: the default platform (when ``build_manager`` and
    none is installed), the in-process worker, the controller's loop, the MCP sessions;
    stopped in the reverse order."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = None
        if dependencies.current_manager(app) is None and build_manager:
            from kneo.service.factory import create_default_platform_manager

            owned = create_default_platform_manager(settings)
            app.state.manager = owned
        worker = None
        manager = dependencies.current_manager(app)
        if run_worker and manager is not None:
            from kneo.worker import Worker

            worker = Worker(manager, settings=settings, name="api")
            worker.start()
            app.state.worker = worker
        runner = None
        if controller is not None:
            from kneo.controller.runner import ControllerRunner
            from kneo.platform.bundles import attach_controller

            if manager is not None:
                attach_controller(manager, controller)
            if run_controller:
                runner = ControllerRunner(controller)
                runner.start()
        exits = AsyncExitStack()
        if getattr(app.state, "mcp", None) is not None:
            await exits.enter_async_context(app.state.mcp.sessions.run())
        try:
            yield
        finally:
            await exits.aclose()
            if runner is not None:
                runner.stop(timeout=5.0)
            if worker is not None:
                worker.stop(timeout=WORKER_DRAIN_SECONDS)
            if owned is not None:
                owned.close()
                app.state.manager = None

    return lifespan


def _mount(app: FastAPI, settings: Settings, *, mcp: bool) -> None:
    """The API routers under ``/v1`` (documented) and at their legacy unversioned paths
    (hidden), health and metrics, and, when asked for, ``/mcp`` and the console at ``/ui``."""
    routers = _routers()
    for router in routers:
        app.include_router(router, prefix="/v1", responses=_ERROR_RESPONSES)
    app.include_router(health_router)
    app.include_router(metrics_router)
    for router in routers:
        app.include_router(router, include_in_schema=False)  # legacy unversioned alias
    app.state.mcp = None
    if mcp:
        from kneo.service.mcp import mount

        mount(app)
    if settings.console_enabled:  # the reviewer console (docs/console.md)
        from kneo.console import create_console

        app.mount("/ui", create_console(app, settings), name="console")


def _document(app: FastAPI) -> None:
    """The OpenAPI document gains the error schema, the two API-key security schemes and the
    documented answers of the run and task operations (:mod:`kneo.service.responses`)."""
    original_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = original_openapi()
            schema.setdefault("components", {}).setdefault("schemas", {})["Error"] = (
                ERROR_RESPONSE_SCHEMA
            )
            schema["components"]["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            }
            schema["security"] = [{"bearer": []}, {"apiKey": []}]
            document_responses(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
