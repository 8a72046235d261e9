"""``kneo service serve``: the HTTP API plus an in-process queue worker (``kneo worker``, the
standalone one, is :mod:`kneo.cli.worker_cmd`).

Configuration errors (auth enabled without keys, a malformed variable) are raised before
uvicorn starts, so they reach the user as one ``error[config_error]: ...`` line.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kneo import startup
from kneo.cli.controller_cmd import controller_config
from kneo.cli.output import TrustedHmacKeysOpt, options
from kneo.cli.worker_cmd import FactoryOpt, exit_after, install_factory
from kneo.controller.runner import build_controllers
from kneo.errors import InvalidRequest
from kneo.metrics import serve_port
from kneo.service.app import (
    REQUEST_DRAIN_SECONDS,
    SHUTDOWN_LIMIT_SECONDS,
    continues_on_workers,
    create_app,
)
from kneo.service.auth import Authenticator, parse_api_keys
from kneo.service.factory import create_default_platform_manager
from kneo.settings import Settings, forwarded_allow_ips, forwarded_header
from kneo.spec.project import ProjectContext

if TYPE_CHECKING:
    from kneo.controller.config import ControllerConfig
    from kneo.controller.projects import ProjectControllers
    from kneo.store import Store

app = typer.Typer(no_args_is_help=True)

WorkerOpt = Annotated[
    bool,
    typer.Option(
        "--worker/--no-worker",
        help="Also execute queued (async) runs, the runs decisions and continues hand to "
        "the workers, and the timeout sweeps in this process (the default); --no-worker: "
        "API only, separate `kneo worker` processes execute",
    ),
]
ForwardedAllowIpsOpt = Annotated[
    str | None,
    typer.Option(
        "--forwarded-allow-ips",
        metavar="IPS",
        help="Reverse proxies (IPs or CIDR networks, comma-separated; * for any) whose "
        "forwarded client address and scheme are believed (else "
        "KNEO_SERV_FORWARDED_ALLOW_IPS; default none)",
    ),
]
ForwardedHeaderOpt = Annotated[
    str | None,
    typer.Option(
        "--forwarded-header",
        metavar="HEADER",
        help="The header those proxies write: x-forwarded-for (the default) or forwarded "
        "(else KNEO_SERV_FORWARDED_HEADER)",
    ),
]


@dataclass(frozen=True)
class ControllerFlags:
    """``serve``'s GitOps controller flags, over the project's ``controller:`` block: whether
    it runs here, which repository and branch it reconciles how often, whose signatures it
    trusts, where the webhook's secret is and whether a removed file deactivates."""

    controller: Annotated[
        bool,
        typer.Option(
            "--controller/--no-controller",
            help="Run the GitOps controller when one is configured (the default)",
        ),
    ] = True
    controller_repo: Annotated[
        str | None,
        typer.Option(
            "--controller-repo", help="Git URL or local path to reconcile (else controller.repo)"
        ),
    ] = None
    controller_branch: Annotated[str | None, typer.Option("--controller-branch")] = None
    controller_interval: Annotated[
        float | None, typer.Option("--controller-interval", help="Poll seconds")
    ] = None
    trusted_keys: Annotated[
        Path | None, typer.Option("--trusted-keys", help="Controller keyring directory")
    ] = None
    trusted_hmac_key_env: TrustedHmacKeysOpt = None
    webhook_secret_env: Annotated[
        str | None, typer.Option("--webhook-secret-env", help="Variable holding the webhook secret")
    ] = None
    prune: Annotated[bool | None, typer.Option("--prune/--no-prune")] = None

    def config(self, settings: Settings) -> ControllerConfig:
        """The ``controller:`` block with these flags over it (a controller runs here only
        when it names a repository)."""
        return controller_config(
            ProjectContext.discover(settings=settings),
            repo=self.controller_repo,
            branch=self.controller_branch,
            interval=self.controller_interval,
            trusted_keys=self.trusted_keys,
            trusted_hmac_key_env=self.trusted_hmac_key_env,
            webhook_secret_env=self.webhook_secret_env,
            prune=self.prune,
        )


@app.command("serve")
@options
def serve(
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8000,
    reload: Annotated[bool, typer.Option("--reload", help="Restart on code changes (dev)")] = False,
    controller: ControllerFlags = ControllerFlags(),
    factory: FactoryOpt = None,
    mcp: Annotated[
        bool, typer.Option("--mcp", help="Also serve the MCP tools at /mcp (API key required)")
    ] = False,
    a2a: Annotated[
        bool, typer.Option("--a2a", help="Also serve A2A at /a2a and its agent card")
    ] = False,
    worker: WorkerOpt = True,
    forwarded_allow_ips: ForwardedAllowIpsOpt = None,
    forwarded_header: ForwardedHeaderOpt = None,
) -> None:
    """Run the Kneo FastAPI service (and, when configured, the GitOps controller)."""
    install_factory(factory)
    settings = replace(Settings.from_env(), process_role="api")
    settings = _with_proxies(settings, forwarded_allow_ips, forwarded_header)
    if reload:
        refused = {
            "--no-worker": not worker,
            "--mcp": mcp,
            "--a2a": a2a,
            "--factory": factory is not None,
            "--controller-repo": controller.controller_repo is not None,
            "--forwarded-allow-ips": forwarded_allow_ips is not None,
            "--forwarded-header": forwarded_header is not None,
        }
        _serve_reloading(settings, host=host, port=port, refused=refused)
        return
    # read with --no-controller too: the webhook and reconcile routes of an API-only replica
    # queue requests for a controller running elsewhere under this name and secret variable
    _serve_platform(
        settings,
        controller.config(settings),
        run_controller=controller.controller,
        host=host,
        port=port,
        worker=worker,
        mcp=mcp,
        a2a=a2a,
    )


def _with_proxies(settings: Settings, allow_ips: str | None, header: str | None) -> Settings:
    """The flags over ``KNEO_SERV_FORWARDED_*`` (checked the same way, errors name the flag)."""
    if allow_ips is not None:
        allowed = forwarded_allow_ips(allow_ips, source="--forwarded-allow-ips")
        settings = replace(settings, forwarded_allow_ips=allowed)
    if header is not None:
        chosen = forwarded_header(header, source="--forwarded-header")
        settings = replace(settings, forwarded_header=chosen)
    return settings


def _serve_reloading(settings: Settings, *, host: str, port: int, refused: dict[str, bool]) -> None:
    """``--reload``: uvicorn's reloader imports the default app afresh in a child process, so
    options that shape this process's app (``refused``, when given) would be silently
    dropped: they are refused instead."""
    import uvicorn

    dropped = [name for name, given in refused.items() if given]
    if dropped:
        raise InvalidRequest(
            f"--reload serves the default app only; it cannot be combined with "
            f"{', '.join(dropped)}",
            field="reload",
        )
    Authenticator.from_settings(settings)  # fail fast, before the reloader forks
    uvicorn.run(
        "kneo.service.app:create_app",
        factory=True,
        host=host,
        port=port,
        reload=True,
        access_log=False,
        proxy_headers=False,  # the app reads forwarded headers (kneo.service.proxies)
        log_level=settings.log_level.lower(),
    )


def _serve_platform(
    settings: Settings,
    ctl_config: ControllerConfig,
    *,
    run_controller: bool,
    host: str,
    port: int,
    worker: bool,
    mcp: bool,
    a2a: bool = False,
) -> None:
    """Opens the platform, builds the controller (when ``run_controller``) and the app over
    them, and serves it until a signal; the store is closed on the way out."""
    Authenticator.from_settings(settings)  # fail fast before opening anything
    # The platform (and so the database) opens here, not in the app's start-up: a database
    # that cannot be reached is one `error[database_unavailable]` line and exit code, not a
    # traceback from uvicorn's lifespan.
    manager = create_default_platform_manager(settings)
    try:
        ctl = None
        if run_controller:  # every project's source, those defined later too
            ctl = build_controllers(
                manager.store,
                ctl_config,
                settings,
                host=manager.project or ProjectContext.discover(settings=settings),
                tools=manager.compiler.tool_registry,
            )
            _echo_sources(ctl)
        # Workers exist either way: this process's, or (--no-worker) the `kneo worker`s.
        on_workers = continues_on_workers(settings.continuations, True)
        application = create_app(
            False,
            settings=settings,
            manager=manager,
            start_worker=worker,
            controller=ctl,
            controller_config=ctl_config,
            run_controller=ctl is not None,
            mcp=mcp,
            a2a=a2a,
            api_only=not worker,
        )
        serve_port(manager.store, settings)  # the app turned metrics and tracing on
        startup.done()
        typer.echo(
            startup_line(
                settings,
                manager.store,
                host=host,
                port=port,
                worker=worker,
                ctl=ctl if ctl is not None and ctl.sources() else None,
                on_workers=on_workers,
            ),
            err=True,
        )
        _serve(application, host=host, port=port, log_level=settings.log_level.lower())
    finally:
        manager.close()


def startup_line(
    settings: Settings,
    store: Store,
    *,
    host: str,
    port: int,
    worker: bool,
    ctl: ProjectControllers | None,
    on_workers: bool = False,
) -> str:
    """One line that says what this process serves: the database (its password redacted),
    the auth mode, the console's URL, whether the worker and the controller run here and
    where decisions continue their runs."""
    database = store.engine.url.render_as_string(hide_password=True)
    if settings.auth_enabled:
        keys = parse_api_keys(settings.api_keys, settings.admin_api_key)
        auth = f"API keys ({', '.join(k.name for k in keys)})"
    else:
        auth = "off (every caller holds every scope; set KNEO_SERV_API_KEYS to require keys)"
    base = f"http://{host}:{port}"
    console = f"{base}/ui" if settings.console_enabled else "off"
    return (
        f"kneo service on {base}: database {database}; auth {auth}; console {console}; "
        f"worker {'on' if worker else 'off'}; controller {'on' if ctl is not None else 'off'}; "
        f"decisions continue {'on workers' if on_workers else 'in the request'}"
    )


def _echo_sources(ctl: ProjectControllers) -> None:
    """What the controller reconciles at start (projects defined later join without a
    restart)."""
    sources = ctl.sources()
    host = ctl.controller_for("default") if sources.pop("default", None) else None
    if host is not None:
        typer.echo(
            f"controller: reconciling {host.source.describe()} every "
            f"{host.config.interval:g}s (leader-elected as {ctl.owner})",
            err=True,
        )
    if sources:
        typer.echo(f"controller: reconciling the sources of {len(sources)} projects", err=True)


def _serve(application: Any, *, host: str, port: int, log_level: str) -> None:
    """uvicorn with a bounded shutdown (``kneo.service.app``: requests in flight get
    ``REQUEST_DRAIN_SECONDS``, the worker ``WORKER_DRAIN_SECONDS``, and the process exits
    ``SHUTDOWN_LIMIT_SECONDS`` after SIGTERM/SIGINT even if a thread hangs on the network)."""
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(
            application,
            host=host,
            port=port,
            access_log=False,
            log_level=log_level,
            timeout_graceful_shutdown=REQUEST_DRAIN_SECONDS,
            proxy_headers=False,  # the app reads forwarded headers (kneo.service.proxies)
        )
    )
    threading.Thread(
        target=exit_after,
        args=(lambda: server.should_exit, SHUTDOWN_LIMIT_SECONDS),
        name="kneo-shutdown-limit",
        daemon=True,
    ).start()
    server.run()
