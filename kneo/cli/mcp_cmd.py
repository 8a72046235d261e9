"""``kneo mcp serve``: the MCP server over stdio (default) or streamable HTTP on its own port.

Each MCP tool calls one HTTP API route with the caller's key (:mod:`kneo.service.mcp`): the
service the connection precedence picks (``--service-url``, ``--profile``, the project's
``service.default_url``, the active profile), else an in-process service app on this
project's store. To serve MCP on the service's own port instead, run ``kneo service serve
--mcp`` (``/mcp``).

The project (tenant) the tools act in: ``--project``, else ``KNEO_SERV_PROJECT``, else the
profile's, else the key's home project (the CLI's precedence). Over HTTP a request's own
``X-Kneo-Project`` header wins over it.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from kneo import startup
from kneo.cli.output import ProjectOpt, ServiceOptions, options, talking_to
from kneo.cli.profiles import project_default_url, resolve_connection
from kneo.errors import InvalidRequest
from kneo.kernel import Origins, async_http_client
from kneo.projects import check_project_name
from kneo.service.app import create_app
from kneo.service.auth import Authenticator
from kneo.service.factory import create_default_platform_manager
from kneo.service.mcp import ApiBridge, McpEndpoint, build_server, in_process_client
from kneo.service.proxies import add_forwarded
from kneo.service.throttle import SignInThrottle
from kneo.settings import Settings

app = typer.Typer(no_args_is_help=True, help="Serve Kneo to assistants over MCP")


@app.command("serve")
@options
def serve(
    transport: Annotated[
        str, typer.Option("--transport", help="stdio, or http (streamable HTTP at /mcp)")
    ] = "stdio",
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="http: the port (0: any free one)")] = 8765,
    service: ServiceOptions = ServiceOptions(),
    project: ProjectOpt = None,
) -> None:
    """Serve human tasks, runs, traces, the registry and the controller status as MCP tools.

    Every tool is an API route called with the caller's API key and its scopes: over HTTP the
    key of each MCP request (required), over stdio the profile's key or
    ``KNEO_SERV_API_KEY``. The routes are the service's when one is in effect (a profile,
    --service-url, the project's service.default_url), else this project's in process.
    They act in --project (else KNEO_SERV_PROJECT, the profile's, the key's home project);
    over HTTP a request's X-Kneo-Project header wins."""
    if transport not in ("stdio", "http"):
        raise InvalidRequest(f"--transport must be stdio or http, got {transport!r}")
    settings = Settings.from_env()
    explicit = service.service_url or service.profile
    connection = resolve_connection(
        service_url=service.service_url,
        profile=service.profile,
        settings=settings,
        project_default_url=None if explicit else project_default_url(settings),
        project=project,
    )
    client, closing = _api_client(settings, connection.url if connection else None)
    if connection is not None:
        talking_to(connection.url, chosen_by=connection.source, profile=connection.profile)
    key = connection.api_key if connection is not None else settings.client_api_key
    if connection is not None:
        tenant = connection.project
    else:  # in process: the same precedence, less a profile
        tenant = project or settings.client_project or None
        if tenant is not None:
            check_project_name(tenant, field="--project")
    bridge = ApiBridge(client, default_key=key, default_project=tenant)
    try:
        if transport == "stdio":
            _serve_stdio(bridge)
        else:
            _serve_http(bridge, settings, host, port)
    finally:
        closing()


def _api_client(settings: Settings, service_url: str | None) -> tuple[Any, Any]:
    """An async HTTP client on the API and how to release what it needs."""
    if service_url:
        url = service_url.rstrip("/")
        grant = Origins.of(url)  # the service's origin only: callers' keys go nowhere else
        client = async_http_client(grant, path="the Kneo service", base_url=url, timeout=120)
        return client, lambda: None

    manager = create_default_platform_manager(settings)
    api = create_app(False, settings=settings, manager=manager, start_worker=False)
    return in_process_client(api), manager.close


def _serve_stdio(bridge: ApiBridge) -> None:
    server = build_server(bridge)
    startup.done()
    server.run("stdio")


def _serve_http(bridge: ApiBridge, settings: Settings, host: str, port: int) -> None:
    import socket
    from contextlib import asynccontextmanager

    import uvicorn
    from starlette.applications import Starlette
    from starlette.routing import Route

    throttle = SignInThrottle(settings.auth_max_failures, settings.auth_failure_window_seconds)
    endpoint = McpEndpoint(bridge.over_http(), Authenticator.from_settings(settings), throttle)

    @asynccontextmanager
    async def lifespan(_: Any) -> Any:
        async with endpoint.sessions.run():
            yield

    application = Starlette(routes=[Route("/mcp", endpoint=endpoint)], lifespan=lifespan)
    add_forwarded(application, settings)  # the throttle keys on the client behind a proxy
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    typer.echo(f"kneo mcp: streamable HTTP on http://{host}:{sock.getsockname()[1]}/mcp", err=True)
    startup.done()
    config = uvicorn.Config(application, log_level="warning", proxy_headers=False)
    uvicorn.Server(config).run(sockets=[sock])
