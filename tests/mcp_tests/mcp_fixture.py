"""A real MCP server for the tests, written with the official SDK (``MCPServer``).

    python -m tests.mcp_tests.mcp_fixture stdio --counter FILE
    python -m tests.mcp_tests.mcp_fixture http --counter FILE [--token-env VAR]   # prints "PORT <n>"

Every tool call appends the tool's name to ``--counter`` first, so a test can prove how often
a tool really ran (across processes and retries). Over HTTP, ``--token-env VAR`` requires
``Authorization: Bearer $VAR`` on every request (an import's ``secret_env``); over stdio the
``whoami`` tool reports whether ``MCP_FIXTURE_TOKEN`` reached the process.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
from pathlib import Path

from mcp.server.mcpserver import MCPServer

COUNTER: Path | None = None

server = MCPServer("kneo-test-fixture")


def _count(name: str) -> None:
    if COUNTER is not None:
        with COUNTER.open("a", encoding="utf-8") as fh:
            fh.write(name + "\n")


@server.tool()
def lookup_user(user_id: str) -> str:
    """Return the email for a user id."""
    _count("lookup_user")
    return {"u-001": "alice@example.com", "u-002": "bob@example.com"}.get(
        user_id, f"unknown: {user_id}"
    )


@server.tool()
def send_email(to: str, subject: str) -> str:
    """Send an email (pretend) and say to whom."""
    _count("send_email")
    return f"sent to {to}: {subject}"


@server.tool()
async def slow(seconds: float) -> str:
    """Sleep (without blocking the server), then answer."""
    _count("slow")
    await asyncio.sleep(seconds)
    return f"slept {seconds:g}s"


@server.tool()
def crash() -> str:
    """Kill the server process mid-call."""
    _count("crash")
    os._exit(3)


@server.tool()
def fail() -> str:
    """Raise: the SDK answers with an error result."""
    _count("fail")
    raise RuntimeError("the fixture tool failed on purpose")


@server.tool()
def whoami() -> str:
    """Whether the stdio secret reached this process (never its value)."""
    _count("whoami")
    return "token present" if os.environ.get("MCP_FIXTURE_TOKEN") else "no token"


def _serve_http(token_env: str | None) -> None:
    import uvicorn
    from starlette.responses import JSONResponse

    app = server.streamable_http_app()
    expected = os.environ.get(token_env) if token_env else None

    async def guarded(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] == "http" and expected is not None:
            headers = dict(scope.get("headers") or [])
            if headers.get(b"authorization") != f"Bearer {expected}".encode():
                await JSONResponse({"error": "unauthorized"}, status_code=401)(scope, receive, send)
                return
        await app(scope, receive, send)

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)  # connections queue until uvicorn accepts them
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(guarded, log_level="warning", lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])


def main() -> None:
    global COUNTER
    parser = argparse.ArgumentParser()
    parser.add_argument("transport", choices=["stdio", "http"])
    parser.add_argument("--counter")
    parser.add_argument("--token-env")
    args = parser.parse_args()
    COUNTER = Path(args.counter) if args.counter else None
    if args.transport == "stdio":
        server.run("stdio")
    else:
        _serve_http(args.token_env)
    sys.exit(0)


if __name__ == "__main__":
    main()
