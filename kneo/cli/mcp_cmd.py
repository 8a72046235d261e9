"""``kneo mcp serve``: the MCP server over stdio (default) or streamable HTTP on its own port.

Each MCP tool calls one HTTP API route with the caller's key (:mod:`kneo.service.mcp`): an
in-process service app on this project's store, or ``--service-url``. To serve MCP on the
service's own port instead, run ``kneo service serve --mcp`` (``/mcp``).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from kneo import startup
from kneo.cli.output import ServiceUrlOpt

app = typer.Typer(no_args_is_help=True, help="Serve Kneo to assistants over MCP")


@app.command("serve")
def serve(
    transport: Annotated[
        str, typer.Option("--transport", help="stdio, or http (streamable HTTP at /mcp)")
    ] = "stdio",
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="http: the port (0: any free one)")] = 8765,
    service_url: ServiceUrlOpt = None,
) -> None:
    """Serve human tasks, runs, traces, the registry and the controller status as MCP tools.

    Every tool is an API route called with the caller's API key and its scopes: over HTTP the
    key of each MCP request (required), over stdio ``KNEO_SERV_API_KEY``."""
    from kneo.errors import InvalidRequest
    from kneo.settings import Settings

    if transport not in ("stdio", "http"):
        raise InvalidRequest(f"--transport must be stdio or http, got {transport!r}")
    settings = Settings.from_env()
    client, closing = _api_client(settings, service_url)
    try:
        if transport == "stdio":
            _serve_stdio(client, settings)
        else:
            _serve_http(client, settings, host, port)
    finally:
        closing()


def _api_client(settings: Any, service_url: str | None) -> tuple[Any, Any]:
    """An async HTTP client on the API and how to release what it needs."""
    if service_url:
        import httpx2

        return httpx2.AsyncClient(base_url=service_url.rstrip("/"), timeout=120), lambda: None
    from kneo.service.app import create_app
    from kneo.service.factory import create_default_platform_manager
    from kneo.service.mcp import in_process_client

    manager = create_default_platform_manager(settings)
    api = create_app(False, settings=settings, manager=manager, start_worker=False)
    return in_process_client(api), manager.close


def _serve_stdio(client: Any, settings: Any) -> None:
    from kneo.service.mcp import ApiBridge, build_server

    server = build_server(ApiBridge(client, default_key=settings.client_api_key))
    startup.done()
    server.run("stdio")


def _serve_http(client: Any, settings: Any, host: str, port: int) -> None:
    import socket
    from contextlib import asynccontextmanager

    import uvicorn
    from starlette.applications import Starlette
    from starlette.routing import Route

    from kneo.service.auth import Authenticator
    from kneo.service.mcp import ApiBridge, McpEndpoint

    endpoint = McpEndpoint(ApiBridge(client), Authenticator.from_settings(settings))

    @asynccontextmanager
    async def lifespan(_: Any) -> Any:
        async with endpoint.sessions.run():
            yield

    application = Starlette(routes=[Route("/mcp", endpoint=endpoint)], lifespan=lifespan)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    typer.echo(f"kneo mcp: streamable HTTP on http://{host}:{sock.getsockname()[1]}/mcp", err=True)
    startup.done()
    uvicorn.Server(uvicorn.Config(application, log_level="warning")).run(sockets=[sock])
