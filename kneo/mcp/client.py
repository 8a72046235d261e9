"""MCP client: a run's sessions to its ``mcp.imports`` servers, with the official ``mcp`` SDK.

The platform injects :class:`McpClientSessions` into the engine as its
:data:`kneo.engine.remote_tools.McpConnector`. The engine is synchronous and the SDK is
async, so each :class:`McpClientSessions` owns one event-loop thread, started on first use;
each server's session lives in its own task there (the SDK's transports must be entered and
left by the same task) and is opened the first time a tool of that server is listed or called.
:meth:`McpClientSessions.close` ends them all when the run returns.

Each import is resolved by the run's :class:`~kneo.policy.access.HostAccess` before anything
starts: a declared server (``mcp_servers`` in ``.kneo/config.yaml``) or, where allowed, the
import's own command or url; a refused import raises ``AccessDenied`` and nothing starts.
Transports: ``stdio`` (the command; the server gets a minimal environment plus its declared
secret), ``http`` (streamable HTTP) and ``sse`` (the url; the secret's value is sent as
``Authorization: Bearer``). ``KNEO_SERV_MCP_TIMEOUT_SECONDS`` bounds each request
(opening a connection may take 30 s: a stdio server starts an interpreter); a call that times out or finds the server gone is
tried again up to ``KNEO_SERV_MCP_RETRIES`` times, ``KNEO_SERV_MCP_RETRY_BACKOFF_SECONDS``
doubling between attempts, reconnecting when the connection broke. What still fails is a
:class:`McpUnavailable` (the tool error the model reads); an error the tool itself returns is
a :class:`McpToolError` and is not retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol, TypeVar

from kneo.errors import AccessDenied, ErrorCode, KneoError
from kneo.kernel import NetworkGrant, async_http_client, secret, stdio_server
from kneo.policy.access import HostAccess, ResolvedServer
from kneo.settings import Settings
from kneo.spec.diagnostics import Diagnostic, diag
from kneo.spec.models import McpImport, Spec
from kneo.tools import ToolDefinition

T = TypeVar("T")

#: How long opening a connection may take (starting a stdio server includes its interpreter).
DEFAULT_CONNECT_SECONDS = 30.0
#: How long closing a session may take before its task is cancelled.
_CLOSE_SECONDS = 5.0


class McpUnavailable(KneoError):
    """The server could not be reached, died, or did not answer in time (after retries)."""

    code = ErrorCode.mcp_unavailable


class McpToolError(KneoError):
    """The server answered the call with an error (not retried)."""

    code = ErrorCode.mcp_tool_error


class McpSession(Protocol):
    """What Kneo calls on an ``mcp.Client`` session (the SDK is an optional extra, so its
    results stay the SDK's own: a page of tools, a call's result)."""

    async def list_tools(self, *, cursor: str | None = None) -> Any: ...

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> Any: ...


class _Connection:
    """One server's open session, held by its own task on the sessions' loop."""

    def __init__(self, transport: Callable[[], AbstractAsyncContextManager[Any]]) -> None:
        self._transport = transport
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.client: McpSession  # set by open()

    async def open(self, timeout: float) -> None:
        from mcp import Client

        ready: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        async def hold() -> None:
            try:
                async with Client(self._transport(), mode="legacy") as client:
                    ready.set_result(client)
                    await self._stop.wait()
            except BaseException as exc:
                if not ready.done():
                    ready.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise

        self._task = asyncio.create_task(hold())
        try:
            self.client = await asyncio.wait_for(asyncio.shield(ready), timeout)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        self._stop.set()
        if self._task is not None and not self._task.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._task), _CLOSE_SECONDS)
            except TimeoutError:
                self._task.cancel()
            except Exception:
                pass  # a session that broke while closing is closed


class McpClientSessions:
    """The MCP sessions of one run: :class:`~kneo.engine.remote_tools.McpSessions`."""

    def __init__(
        self, imports: Sequence[McpImport], *, settings: Settings, access: HostAccess
    ) -> None:
        """Raises ``AccessDenied`` when ``access`` refuses an import: nothing starts."""
        self._servers = {
            imp.name: access.server(imp, path=f"mcp.imports[{i}]") for i, imp in enumerate(imports)
        }
        self._settings = settings
        self._access = access
        self._timeout = settings.mcp_timeout_seconds
        self._retries = settings.mcp_retries
        self._backoff = settings.mcp_retry_backoff_seconds
        self._connections: dict[str, _Connection] = {}
        self._listings: dict[str, list[ToolDefinition]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ the seam

    def list_tools(self, server: str) -> list[ToolDefinition]:
        with self._lock:
            cached = self._listings.get(server)
        if cached is not None:
            return list(cached)

        async def op(client: McpSession) -> list[ToolDefinition]:
            tools: list[ToolDefinition] = []
            cursor: str | None = None
            while True:
                page = await client.list_tools(cursor=cursor)
                tools.extend(
                    ToolDefinition(
                        name=t.name,
                        description=t.description or "",
                        parameters=dict(t.input_schema or {"type": "object"}),
                        mcp_server=server,
                    )
                    for t in page.tools
                )
                cursor = page.next_cursor
                if not cursor:
                    return tools

        listing = self._attempts(server, "listing tools", op)
        with self._lock:
            self._listings[server] = listing
        return list(listing)

    def call_tool(self, server: str, name: str, arguments: Mapping[str, Any]) -> str:
        async def op(client: McpSession) -> Any:
            return await client.call_tool(name, dict(arguments))

        result = self._attempts(server, f"calling tool '{name}'", op)
        text = _result_text(result)
        if result.is_error:
            raise McpToolError(
                f"MCP server '{server}' returned an error for tool '{name}': {text}",
                server=server,
                tool=name,
            )
        return text

    def close(self) -> None:
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
            connections, self._connections = list(self._connections.values()), {}
        if loop is None or thread is None:
            return

        async def close_all() -> None:
            await asyncio.gather(*(c.close() for c in connections), return_exceptions=True)

        with contextlib.suppress(Exception):  # best effort: the loop stops below either way
            asyncio.run_coroutine_threadsafe(close_all(), loop).result(_CLOSE_SECONDS * 2)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(_CLOSE_SECONDS)
        if not thread.is_alive():
            loop.close()

    # ------------------------------------------------------------------ attempts

    def _attempts(self, server: str, what: str, op: Callable[[McpSession], Awaitable[T]]) -> T:
        """``op`` on the server's session; retried while the server is unavailable."""
        if server not in self._servers:
            raise McpUnavailable(f"no MCP import is named '{server}'", server=server)
        attempts = self._retries + 1
        last: BaseException | None = None
        for attempt in range(1, attempts + 1):
            try:
                return self._submit(self._once(server, op))
            except (McpToolError, AccessDenied):
                raise  # a refused destination is refused again: nothing was sent there
            except McpUnavailable as exc:
                last = exc
            if attempt < attempts and self._backoff > 0:
                time.sleep(self._backoff * 2 ** (attempt - 1))
        raise McpUnavailable(
            f"MCP server '{server}' failed while {what} ({attempts} attempt(s)): {last}",
            server=server,
            attempts=attempts,
        )

    async def _once(self, server: str, op: Callable[[McpSession], Awaitable[T]]) -> T:
        from mcp import MCPError

        connection = await self._connection(server)
        try:
            if self._timeout is None:
                return await op(connection.client)
            return await asyncio.wait_for(op(connection.client), self._timeout)
        except TimeoutError:
            raise McpUnavailable(f"no answer within {self._timeout:g}s") from None
        except MCPError as exc:
            if _connection_lost(exc):
                await self._drop(server)
                raise McpUnavailable(f"connection lost: {exc.error.message}") from None
            raise McpToolError(f"MCP error {exc.code}: {exc.error.message}") from None
        except Exception as exc:  # the transport broke (process died, socket closed)
            await self._drop(server)
            raise _refusal(exc) or McpUnavailable(_describe(exc)) from None

    async def _connection(self, server: str) -> _Connection:
        existing = self._connections.get(server)
        if existing is not None:
            return existing
        connection = _Connection(lambda: self._transport(self._servers[server]))
        try:
            await connection.open(DEFAULT_CONNECT_SECONDS)
        except TimeoutError:
            raise McpUnavailable("could not connect in time") from None
        except Exception as exc:
            raise _refusal(exc) or McpUnavailable(f"could not connect: {_describe(exc)}") from None
        self._connections[server] = connection
        return connection

    async def _drop(self, server: str) -> None:
        connection = self._connections.pop(server, None)
        if connection is not None:
            await connection.close()

    def _submit(self, coro: Awaitable[T]) -> T:
        loop = self._ensure_loop()
        return asyncio.run_coroutine_threadsafe(coro, loop).result()  # type: ignore[arg-type]

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="kneo-mcp-client", daemon=True
                )
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    # ------------------------------------------------------------------ transports

    def _transport(self, server: ResolvedServer) -> AbstractAsyncContextManager[Any]:
        variable, path = server.secret_variable, f"MCP server {server.name!r}"
        reference = server.secret_reference
        value = (
            secret(self._access, self._settings.environ, reference, path=f"{path}.secret")
            if reference
            else None
        )
        if server.transport == "stdio":
            env = {variable: value} if variable and value else None
            return stdio_server(self._access, server.command, env=env, path=f"{path}.command")
        # HostAccess.server resolves a url, and where its requests may go, for http and sse
        assert server.url is not None and server.reach is not None
        headers = {"Authorization": f"Bearer {value}"} if value else {}
        if server.transport == "sse":
            from mcp.client.sse import sse_client

            factory = functools.partial(async_http_client, server.reach, path=path)
            return sse_client(server.url, headers=headers, httpx_client_factory=factory)
        return _streamable_http(server.url, headers, server.reach, path)


@asynccontextmanager
async def _streamable_http(
    url: str, headers: dict[str, str], reach: NetworkGrant, path: str
) -> AsyncIterator[Any]:
    """The session's requests go through the kernel's client, which asks ``reach`` at
    every hop (the SDK itself follows only redirects within the endpoint's origin)."""
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    timeout = httpx2.Timeout(30.0, read=300.0)
    async with (
        async_http_client(reach, path=path, headers=headers, timeout=timeout) as http,
        streamable_http_client(url, http_client=http) as streams,
    ):
        yield streams


def _connection_lost(exc: Any) -> bool:
    from mcp.types import CONNECTION_CLOSED

    return bool(exc.code == CONNECTION_CLOSED)


def _refusal(exc: BaseException | None) -> AccessDenied | None:
    """The kernel's refusal of a request behind ``exc`` (inside the SDK's task groups and
    wrappers), if that is why the session broke."""
    seen = 0
    while exc is not None and seen < 20:
        if isinstance(exc, AccessDenied):
            return exc
        if isinstance(exc, BaseExceptionGroup):
            found = (_refusal(e) for e in exc.exceptions)
            return next((e for e in found if e is not None), None)
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def _describe(exc: BaseException) -> str:
    """One line for an exception, descending into exception groups (anyio task groups)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _result_text(result: Any) -> str:
    """A call's content as the model reads it: the text blocks, else the structured result."""
    texts = [block.text for block in result.content or [] if getattr(block, "text", None)]
    if texts:
        return "\n".join(texts)
    if result.structured_content is not None:
        return json.dumps(result.structured_content, default=str)
    return ""


def check_imports(spec: Spec, settings: Settings, access: HostAccess) -> list[Diagnostic]:
    """``kneo spec validate|lint``: every tool an import lists must be offered by its server
    (``E_MCP_TOOL_UNKNOWN``); a server that cannot be reached is ``W_MCP_UNREACHABLE``.
    Only servers ``access`` allows are contacted (a refused one is already a diagnostic of
    its own). One attempt per server (no retries), so an absent server costs one connect
    timeout."""
    from dataclasses import replace

    out: list[Diagnostic] = []
    names = access.allowed_servers(spec.mcp.imports)
    allowed = [imp for imp in spec.mcp.imports if imp.name in names]
    if not allowed:
        return out
    sessions = McpClientSessions(allowed, settings=replace(settings, mcp_retries=0), access=access)
    try:
        for i, imp in enumerate(spec.mcp.imports):
            if imp.name not in names:
                continue
            try:
                offered = [d.name for d in sessions.list_tools(imp.name)]
            except McpUnavailable as exc:
                out.append(
                    diag(
                        "W_MCP_UNREACHABLE",
                        f"mcp.imports[{i}]",
                        f"MCP server '{imp.name}' could not be reached to check its tools: "
                        f"{exc.message}",
                        "start the server where the check runs; its tool names are checked "
                        "again when a run first calls it",
                    )
                )
                continue
            for j, name in enumerate(imp.tools):
                if name not in offered:
                    out.append(
                        diag(
                            "E_MCP_TOOL_UNKNOWN",
                            f"mcp.imports[{i}].tools[{j}]",
                            f"MCP server '{imp.name}' offers no tool '{name}'.",
                            f"it offers: {', '.join(sorted(offered)) or '(no tools)'}",
                        )
                    )
    finally:
        sessions.close()
    return out
