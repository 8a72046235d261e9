"""``create_app``: the FastAPI application behind ``kneo service serve``.

Composition only: settings and auth are resolved here (startup fails with one clear line
when auth is on without keys), the platform manager comes from
:mod:`kneo.service.dependencies`, routers are mounted under ``/v1`` and again at their
legacy unversioned paths (hidden from OpenAPI), and the in-process queue worker is started
and stopped with the app's lifespan. Where workers exist, the platform's decisions and
continues hand their runs to them (:mod:`kneo.platform.handoff`, :func:`continues_on_workers`).

The MCP endpoint (:mod:`kneo.service.mcp`, with the MCP SDK: +0.64 s) is imported only when
it is mounted (``mcp=True``).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from kneo import __version__, metrics, tracing
from kneo.controller.runner import ControllerRunner
from kneo.errors import ConfigError, KneoError
from kneo.logs import get_logger, quiet_http_clients
from kneo.names import NAME_PATTERN
from kneo.platform.bundles import attach_controller
from kneo.platform.receivers import load_receivers
from kneo.projects import PROJECT_HEADER
from kneo.service import dependencies
from kneo.service.auth import Authenticator
from kneo.service.deciders import people_of, warn_undecided
from kneo.service.errors import ERROR_RESPONSE_SCHEMA, install_error_handlers
from kneo.service.factory import create_default_platform_manager
from kneo.service.health import router as health_router
from kneo.service.json_schemas import router as schemas_router
from kneo.service.metrics import router as metrics_router
from kneo.service.middleware import LOGGER_NAME, RequestContextMiddleware
from kneo.service.operation_ids import operation_id
from kneo.service.proxies import add_forwarded
from kneo.service.responses import RESPONSES, document_responses
from kneo.service.responses_platform import PLATFORM_RESPONSES
from kneo.service.routes import (
    audit,
    controller,
    human,
    notifications,
    projects,
    rollouts,
    runs,
    schedules,
    security,
    sessions,
    skills,
    specs,
    triggers,
)
from kneo.service.slack import router as slack_router
from kneo.service.throttle import SignInThrottle
from kneo.service.version import router as version_router
from kneo.settings import CONTINUATION_MODES, Settings
from kneo.worker import Worker

if TYPE_CHECKING:
    from kneo.controller.config import ControllerConfig
    from kneo.controller.controller import Controller
    from kneo.controller.projects import ProjectControllers
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
        (
            429,
            "Too many failed sign-in attempts from this client, or the project is at one of "
            "its limits (project_limit_reached); Retry-After says when to try again",
        ),
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
    routes = (
        runs, human, specs, controller, audit, security, notifications, sessions, skills,
        schedules, triggers, rollouts,
    )  # fmt: skip
    return [r.router for r in routes]


Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def create_app(
    configure_default_manager: bool = True,
    *,
    settings: Settings | None = None,
    manager: PlatformManager | None = None,
    start_worker: bool | None = None,
    controller: Controller | ProjectControllers | None = None,
    controller_config: ControllerConfig | None = None,
    run_controller: bool = False,
    mcp: bool = False,
    a2a: bool = False,
    continuations: str | None = None,
    api_only: bool = False,
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
    ``mcp`` serves the MCP tools at ``/mcp`` (:mod:`kneo.service.mcp`); ``a2a`` the A2A
    server at ``/a2a`` and its agent card (:mod:`kneo.service.a2a_mount`).
    ``continuations`` (default ``KNEO_SERV_CONTINUATIONS``): where a decision's or a
    continue's run executes (:func:`continues_on_workers`). ``api_only``: the app runs no
    worker because its workers are other processes (``kneo service serve --no-worker``).
    """
    settings = settings or Settings.from_env()
    authenticator = Authenticator.from_settings(settings)  # fails fast: auth on, no keys
    run_worker = configure_default_manager if start_worker is None else start_worker
    lifespan = _lifespan(
        settings,
        build_manager=configure_default_manager,
        run_worker=run_worker,
        controller=controller,
        run_controller=run_controller,
        on_workers=continues_on_workers(
            continuations or settings.continuations, run_worker or api_only
        ),
    )
    app = _fastapi_app(lifespan)
    _set_state(app, settings, authenticator, manager, controller, controller_config)
    _observe_and_guard(app, settings)
    _mount(app, settings, mcp=mcp, a2a=a2a)
    _document(app)
    return app


def _fastapi_app(lifespan: Lifespan) -> FastAPI:
    """The bare app: its title, description and operation ids for the OpenAPI document."""
    return FastAPI(
        title="Kneo service",
        version=__version__,
        description="Run AI agent workflows with durable human approval. "
        "Authenticate with `Authorization: Bearer <key>`, `X-API-Key: <key>` or "
        "`X-Kneo-Api-Key: <key>`.",
        lifespan=lifespan,
        generate_unique_id_function=operation_id,  # runs-list, not list_runs_v1_runs_get
        # FastAPI's own OpenTelemetry (newer releases; an unknown keyword to older ones)
        # records validation inputs and exception messages as they are: off. The HTTP span
        # is the request middleware's, under the one redaction policy (kneo.tracing).
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )


def _set_state(
    app: FastAPI,
    settings: Settings,
    authenticator: Authenticator,
    manager: PlatformManager | None,
    controller: Controller | ProjectControllers | None,
    controller_config: ControllerConfig | None,
) -> None:
    """What the routes read from ``app.state``: the settings, who may call, the sign-in
    throttle, the platform and the controller (the worker is the lifespan's to set)."""
    app.state.settings = settings
    app.state.authenticator = authenticator
    app.state.sign_in_throttle = SignInThrottle(
        settings.auth_max_failures, settings.auth_failure_window_seconds
    )
    app.state.manager = manager
    app.state.worker = None
    app.state.controller = controller
    app.state.controller_config = controller_config or getattr(controller, "config", None)


def _observe_and_guard(app: FastAPI, settings: Settings) -> None:
    """Logging, metrics and tracing on; error envelopes; the request middleware (body limit,
    request log) and, outermost, the forwarded-header reading."""
    configure_logging(settings)
    metrics.enable()
    tracing.configure(settings)
    install_error_handlers(app)
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=settings.limits.max_body_bytes,
        request_logs=settings.request_logs,
    )
    add_forwarded(app, settings)  # outermost: the request log sees the real client too


def _report_deciders(app: FastAPI, manager: PlatformManager | None) -> None:
    """Warn of each person a receiver sends a link or button whose use cannot decide
    (:func:`kneo.service.deciders.undecided`); a receiver that cannot load is the
    dispatcher's to report."""
    project = manager.project if manager is not None else None
    try:
        receivers = load_receivers(app.state.settings, project.config if project else None)
        warn_undecided(app.state.authenticator, receivers, people_of(app))
    except KneoError as exc:
        log.warning("notification receivers could not be checked: %s", exc.message)


def continues_on_workers(mode: str, workers: bool) -> bool:
    """Whether the app's decisions and continues hand their runs to the workers: ``queue``
    always, ``request`` never, ``auto`` when ``workers`` exist (the app runs one, or is an
    API-only replica beside ``kneo worker`` processes). One meaning for ``kneo service
    serve`` and an embedder's ``create_app``; the answer is the run's outcome either way
    (:mod:`kneo.service.continuations`)."""
    if mode not in CONTINUATION_MODES:
        raise ConfigError(
            f"continuations must be one of {', '.join(CONTINUATION_MODES)}, got {mode!r}",
            variable="KNEO_SERV_CONTINUATIONS",
        )
    return mode == "queue" or (mode == "auto" and workers)


def _lifespan(
    settings: Settings,
    *,
    build_manager: bool,
    run_worker: bool,
    controller: Controller | ProjectControllers | None,
    run_controller: bool,
    on_workers: bool,
) -> Lifespan:
    """What runs for the app's lifetime: the default platform (when ``build_manager`` and
    none is installed), the in-process worker, the controller's loop, the MCP sessions,
    the A2A push sweep;
    stopped in the reverse order. ``on_workers``: the platform hands the runs of decisions
    and continues to the workers (which a queued run wakes: kneo.store.coordination.wakeups)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = None
        if dependencies.current_manager(app) is None and build_manager:
            owned = create_default_platform_manager(settings)
            app.state.manager = owned
        worker = None
        manager = dependencies.current_manager(app)
        if run_worker and manager is not None:
            worker = Worker(manager, settings=settings, name="api")
            worker.start()
            app.state.worker = worker
        if manager is not None:  # (PostgreSQL) the workers' word that a run moved, at once
            manager.store.wakeups.start()
        handoff = getattr(manager, "handoff", None)
        was = handoff.enabled if handoff is not None else None
        if handoff is not None:
            handoff.enabled = on_workers
            handoff.local = worker  # a decision may give its run straight to an idle thread
        runner = None
        if controller is not None:
            if manager is not None:
                attach_controller(manager, controller)
            if run_controller:
                runner = ControllerRunner(controller)
                runner.start()
        _report_deciders(app, manager)
        exits = AsyncExitStack()
        if getattr(app.state, "mcp", None) is not None:
            await exits.enter_async_context(app.state.mcp.sessions.run())
        if getattr(app.state, "a2a", None) is not None:  # the A2A push sweep
            exits.enter_context(app.state.a2a.background())
        try:
            yield
        finally:
            await exits.aclose()
            if runner is not None:
                runner.stop(timeout=5.0)
            if worker is not None:
                worker.stop(timeout=WORKER_DRAIN_SECONDS)
            if handoff is not None and was is not None:
                handoff.enabled, handoff.local = was, None
            if owned is not None:
                owned.close()
                app.state.manager = None

    return lifespan


def _mount(app: FastAPI, settings: Settings, *, mcp: bool, a2a: bool) -> None:
    """The API routers under ``/v1`` (documented) and at their legacy unversioned paths
    (hidden), health and metrics, and, when asked for, ``/mcp``, ``/a2a`` and the console at
    ``/ui``."""
    routers = _routers()
    for router in routers:
        app.include_router(router, prefix="/v1", responses=_ERROR_RESPONSES)
    # the project catalog is new: /v1 only (the legacy aliases serve the original's clients)
    app.include_router(projects.router, prefix="/v1", responses=_ERROR_RESPONSES)
    app.include_router(health_router)
    app.include_router(health_router, prefix="/v1", include_in_schema=False)  # the original's
    app.include_router(version_router, prefix="/v1")
    app.include_router(version_router, include_in_schema=False)  # legacy, like the API
    app.include_router(metrics_router)
    app.include_router(slack_router)  # Slack's interaction callbacks (signed by Slack)
    app.include_router(schemas_router)
    for router in routers:
        app.include_router(router, include_in_schema=False)  # legacy unversioned alias
    app.state.mcp = None
    if mcp:
        from kneo.service.mcp import mount  # cost: module docstring

        mount(app)
    app.state.a2a = None
    if a2a:
        try:  # the official SDK is the `a2a` extra: it weighs on the image (protobuf, Google's API core)
            from kneo.service.a2a_mount import mount as mount_a2a
        except ImportError as exc:
            raise ConfigError(
                f"--a2a needs the A2A SDK: install kneo-platform[a2a] ({exc.name} is missing)",
                field="a2a",
            ) from None
        mount_a2a(app)
    if settings.console_enabled:  # the reviewer console (docs/console.md)
        from kneo.console import create_console  # import cycle: the console imports this module

        app.mount("/ui", create_console(app, settings), name="console")


#: The project a request acts in, on every operation that acts in one (not the catalog).
PROJECT_PARAMETER = {
    "name": PROJECT_HEADER,
    "in": "header",
    "required": False,
    "description": "The project (tenant) the request acts in; absent: the caller's home "
    "project (the first its roles name, else `default`). One the caller holds no grant in is "
    "`404 project_not_found`. The path form `/v1/projects/{name}/...` names it too.",
    "schema": {"type": "string", "pattern": NAME_PATTERN},
}


def _document_project(schema: dict[str, Any]) -> None:
    """The ``X-Kneo-Project`` header on every operation that acts in a project (every ``/v1``
    route but the project catalog's), written out in each, as FastAPI writes its own."""
    for path, item in schema["paths"].items():
        if not path.startswith("/v1/") or path.startswith("/v1/projects"):
            continue
        for operation in item.values():
            if isinstance(operation, dict) and "operationId" in operation:
                operation.setdefault("parameters", []).append(dict(PROJECT_PARAMETER))


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
                "kneoApiKey": {"type": "apiKey", "in": "header", "name": "X-Kneo-Api-Key"},
            }
            schema["security"] = [{"bearer": []}, {"apiKey": []}, {"kneoApiKey": []}]
            _document_project(schema)
            document_responses(schema, {**RESPONSES, **PLATFORM_RESPONSES})
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
