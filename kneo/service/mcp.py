"""``kneo mcp serve``: Kneo's human tasks, runs and registry as MCP tools, under the API's scopes.

Every tool is one HTTP API route (:data:`TOOLS`), called with the caller's own API key. The
route does the work, so an assistant gets exactly what the key gets over HTTP: the same
scope check (a ``viewer`` key cannot resume: ``403 forbidden``), the same validation and
error codes, the same audit events with the key's *name* as actor. There is no second scope
table and no second implementation of any operation.

Where the calls go:

* **mounted on the service** (``kneo service serve --mcp``, ``create_app(mcp=True)``):
  ``POST /mcp`` (streamable HTTP, stateless, JSON responses); the key comes from the MCP
  request's ``Authorization: Bearer`` or ``X-API-Key`` header and every request without a
  valid key is ``401`` before any MCP handling; calls go to the same app in-process;
* **its own port** (``kneo mcp serve --transport http``): the same ``/mcp`` endpoint and
  check in a process of its own, in front of an in-process API (or ``--service-url``);
* **stdio** (``kneo mcp serve``): for an assistant on the same machine; calls carry
  ``KNEO_SERV_API_KEY`` (the CLI's key) to the in-process API or to ``--service-url``.

The project (tenant) a call acts in travels the same way as the key: over HTTP the MCP
request's own ``X-Kneo-Project`` header is forwarded to the route; over stdio (and for an
HTTP request naming none) the server's ``--project``. Without either the route takes the
key's home project, as for any API call. The route checks it: a project the key holds no
grant in is ``404 project_not_found``, never another project's data.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from kneo.errors import KneoError
from kneo.projects import PROJECT_HEADER
from kneo.service.api_calls import call_headers, json_body, segment
from kneo.service.auth import Authenticator, key_in_headers, sign_in
from kneo.service.errors import error_headers
from kneo.service.throttle import SignInThrottle

if TYPE_CHECKING:
    import httpx2
    from starlette.applications import Starlette
    from starlette.types import ASGIApp

#: What the assistant is told about this server.
INSTRUCTIONS = (
    "Kneo runs AI agent workflows with durable human approval. List pending human tasks, read "
    "one, and resume it with a decision (approved, rejected, edited + content, provided + "
    "content, selected + selected_option); start a run of an approved bundle; read runs, "
    "their traces, the bundle registry and the GitOps controller. Each tool is the HTTP API "
    "route it names, under your API key's scopes."
)


@dataclass(frozen=True)
class ApiTool:
    """An MCP tool and the API route it calls."""

    name: str
    method: str
    path: str
    description: str


TOOLS: tuple[ApiTool, ...] = (
    ApiTool(
        "list_human_tasks",
        "GET",
        "/v1/human-tasks",
        "Pending human tasks, oldest first; q finds those holding every word of it (prompt, "
        "run input, workflow, assignee). Each has input_preview, its run input's first words.",
    ),
    ApiTool(
        "get_human_task",
        "GET",
        "/v1/human-tasks/{continuation_id}",
        "One human task: its requests (kind, prompt, accepted decisions, context) and, with "
        "include_context (needs runs:read), the run's input, the agents' "
        "conversation up to the pause, the workflow position and earlier decisions.",
    ),
    ApiTool(
        "resume_human_task",
        "POST",
        "/v1/human-tasks/{continuation_id}/resume",
        "Answer one request of a human task and continue the run; audited with your key's name. "
        "request_id may be left out when the task waits on one request only. "
        "The answer is the run's outcome or next pause, as soon as it reaches one (within "
        "wait_seconds if given, else the service's bound); wait_seconds 0: the run as handed "
        "to a worker (status running) at once.",
    ),
    ApiTool(
        "start_run",
        "POST",
        "/v1/runs",
        "Run the active (approved) registry revision of a bundle in an environment.",
    ),
    ApiTool("get_run", "GET", "/v1/runs/{run_id}", "A run's status, position and output."),
    ApiTool("get_run_trace", "GET", "/v1/runs/{run_id}/trace", "A run's trace events (redacted)."),
    ApiTool(
        "list_registry_bundles", "GET", "/v1/registry/bundles", "Bundle revisions in the registry."
    ),
    ApiTool(
        "get_registry_bundle",
        "GET",
        "/v1/registry/bundles/{bundle}/{environment}",
        "One bundle's revisions in one environment.",
    ),
    ApiTool(
        "controller_status",
        "GET",
        "/v1/controller/status",
        "The GitOps controller's last reconcile and conditions.",
    ),
)

Sender = Callable[[str, str, str | None, Mapping[str, Any] | None, Any], Awaitable[Any]]


class ApiBridge:
    """Sends tool calls to the HTTP API with the caller's key, in the caller's project.

    ``client`` is an ``httpx2.AsyncClient`` on the service (in-process through its ASGI app,
    or a URL). ``default_key`` is stdio's key; over HTTP only the request's own key is used.
    ``default_project`` is the project of a call whose request names none (every stdio
    call); an HTTP request's ``X-Kneo-Project`` wins.
    """

    def __init__(
        self,
        client: httpx2.AsyncClient,
        *,
        default_key: str | None = None,
        default_project: str | None = None,
    ) -> None:
        self._client = client
        self._default_key = default_key or None
        self.default_project = default_project or None

    def over_http(self) -> ApiBridge:
        """This bridge for HTTP requests: each call its request's own key (never stdio's
        key), in the request's project, else this bridge's."""
        return ApiBridge(self._client, default_project=self.default_project)

    async def call(
        self,
        headers: Mapping[str, str] | None,
        tool: ApiTool,
        *,
        path_params: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        idempotency_key: str | None = None,
        wait_seconds: int | None = None,
    ) -> Any:
        key = presented(headers) if headers is not None else self._default_key
        named = named_project(headers) if headers is not None else None
        project = named or self.default_project
        prefer: str | None = None  # None: the service's own wait (the outcome)
        if wait_seconds is not None:
            prefer = f"wait={int(wait_seconds)}" if wait_seconds > 0 else "respond-async"
        out_headers = call_headers(
            "mcp", key=key, project=project, idempotency_key=idempotency_key, prefer=prefer
        )
        path = tool.path.format(**{k: segment(v) for k, v in (path_params or {}).items()})
        response = await self._client.request(
            tool.method,
            path,
            params={k: v for k, v in (params or {}).items() if v is not None},
            json=body,
            headers=out_headers,
        )
        data = json_body(response)
        if response.status_code >= 400:
            error = data.get("error", "error") if isinstance(data, dict) else "error"
            message = data.get("message", "") if isinstance(data, dict) else str(data)
            raise ToolError(f"{response.status_code} {error}: {message}")
        return data


def presented(headers: Mapping[str, str]) -> str | None:
    """The API key of an HTTP request, read as the service reads it (bearer wins)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    return key_in_headers(lowered.get)


def named_project(headers: Mapping[str, str]) -> str | None:
    """The project an HTTP request names (its ``X-Kneo-Project`` header), checked by the
    route it is forwarded to."""
    wanted = PROJECT_HEADER.lower()
    return next((v for k, v in headers.items() if k.lower() == wanted), None) or None


def build_server(bridge: ApiBridge) -> MCPServer:
    """The MCP server with one tool per :data:`TOOLS` entry, by area: human tasks, runs,
    the registry and the controller."""
    server = MCPServer("kneo", instructions=INSTRUCTIONS)
    tools = _Tools(server, bridge)
    _human_task_tools(tools)
    _run_tools(tools)
    _registry_tools(tools)
    return server


_BY_NAME = {tool.name: tool for tool in TOOLS}


class _Tools:
    """Declares tools on ``server`` and sends their calls through ``bridge``."""

    def __init__(self, server: MCPServer, bridge: ApiBridge) -> None:
        self._server = server
        self._bridge = bridge

    def tool(self, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Declares the tool ``name`` with its :data:`TOOLS` description."""
        return self._server.tool(name=name, description=_BY_NAME[name].description)

    async def call(self, ctx: Context, name: str, **kwargs: Any) -> dict[str, Any]:
        """Calls the route of tool ``name`` with the key of the request in ``ctx`` (the SDK's
        request context: its headers carry the caller's key over HTTP)."""
        try:
            headers: Mapping[str, str] | None = ctx.headers
        except ValueError:  # no request (direct invocation)
            headers = None
        return await self._bridge.call(headers, _BY_NAME[name], **kwargs)  # type: ignore[no-any-return]


def _human_task_tools(tools: _Tools) -> None:
    @tools.tool("list_human_tasks")
    async def list_human_tasks(
        ctx: Context,
        run_id: str | None = None,
        assignee: str | None = None,
        kind: str | None = None,
        limit: int = 50,
        q: str | None = None,
    ) -> dict[str, Any]:
        params = {"run_id": run_id, "assignee": assignee, "kind": kind, "limit": limit, "q": q}
        return await tools.call(ctx, "list_human_tasks", params=params)

    @tools.tool("get_human_task")
    async def get_human_task(
        ctx: Context, continuation_id: str, include_context: bool = False
    ) -> dict[str, Any]:
        path_params = {"continuation_id": continuation_id}
        params = {"include": "context"} if include_context else None
        return await tools.call(ctx, "get_human_task", path_params=path_params, params=params)

    @tools.tool("resume_human_task")
    async def resume_human_task(
        ctx: Context,
        continuation_id: str,
        decision: str,
        request_id: str | None = None,
        content: str | None = None,
        selected_option: str | None = None,
        idempotency_key: str | None = None,
        wait_seconds: int | None = None,
    ) -> dict[str, Any]:
        if request_id is None:  # the one pending request, as A2A's answer defaults it
            path_params = {"continuation_id": continuation_id}
            task = await tools.call(ctx, "get_human_task", path_params=path_params)
            pending = [r for r in task.get("requests") or [] if r.get("status") == "pending"]
            if len(pending) != 1:
                raise ToolError(
                    f"400 invalid_request: task {continuation_id} waits on {len(pending)} "
                    "requests: name one as request_id"
                )
            request_id = str(pending[0]["request_id"])
        body = {
            k: v
            for k, v in {
                "request_id": request_id,
                "decision": decision,
                "content": content,
                "selected_option": selected_option,
            }.items()
            if v is not None
        }
        return await tools.call(
            ctx,
            "resume_human_task",
            path_params={"continuation_id": continuation_id},
            body=body,
            idempotency_key=idempotency_key,
            wait_seconds=wait_seconds,
        )


def _run_tools(tools: _Tools) -> None:
    @tools.tool("start_run")
    async def start_run(
        ctx: Context,
        bundle: str,
        environment: str,
        input: str,
        target: str = "workflow",
        async_mode: bool = False,
    ) -> dict[str, Any]:
        body = {
            "bundle": bundle,
            "environment": environment,
            "input": input,
            "target": target,
            "async_mode": async_mode,
        }
        return await tools.call(ctx, "start_run", body=body)

    @tools.tool("get_run")
    async def get_run(ctx: Context, run_id: str) -> dict[str, Any]:
        return await tools.call(ctx, "get_run", path_params={"run_id": run_id})

    @tools.tool("get_run_trace")
    async def get_run_trace(ctx: Context, run_id: str, limit: int = 100) -> dict[str, Any]:
        path_params = {"run_id": run_id}
        return await tools.call(
            ctx, "get_run_trace", path_params=path_params, params={"limit": limit}
        )


def _registry_tools(tools: _Tools) -> None:
    @tools.tool("list_registry_bundles")
    async def list_registry_bundles(
        ctx: Context, environment: str | None = None, cursor: str | None = None
    ) -> dict[str, Any]:
        params = {"environment": environment, "cursor": cursor}
        return await tools.call(ctx, "list_registry_bundles", params=params)

    @tools.tool("get_registry_bundle")
    async def get_registry_bundle(ctx: Context, bundle: str, environment: str) -> dict[str, Any]:
        path_params = {"bundle": bundle, "environment": environment}
        return await tools.call(ctx, "get_registry_bundle", path_params=path_params)

    @tools.tool("controller_status")
    async def controller_status(ctx: Context) -> dict[str, Any]:
        return await tools.call(ctx, "controller_status")


#: The ``WWW-Authenticate`` realm of ``/mcp``'s ``401``.
REALM = "kneo"


def bearer_challenge(presented_a_key: bool) -> str:
    """``/mcp``'s ``WWW-Authenticate`` (RFC 6750 section 3): the ``Bearer`` scheme, so an MCP
    client sends its API key as a bearer token, and ``invalid_token`` only when a key was sent
    (a request without one gets no error code, as the RFC asks). No ``resource_metadata``: Kneo
    takes API keys and runs no OAuth authorization server, so it publishes no protected
    resource metadata that would send a client to one (docs/mcp.md)."""
    challenge = f'Bearer realm="{REALM}"'
    if presented_a_key:
        challenge += (
            ', error="invalid_token", error_description="the API key or token is not valid"'
        )
    return challenge


class McpEndpoint:
    """``/mcp`` over streamable HTTP: a request without a valid API key is ``401`` with a
    ``Bearer`` challenge before any MCP handling, through the service's sign-in (the
    :class:`Authenticator` and the :class:`SignInThrottle`: a wrong key counts, a throttled
    client is ``429``); scopes are the routes'."""

    def __init__(
        self, bridge: ApiBridge, authenticator: Authenticator, throttle: SignInThrottle
    ) -> None:
        from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
        from mcp.server.transport_security import TransportSecuritySettings

        self.server = build_server(bridge)
        self._authenticator = authenticator
        self._throttle = throttle
        # Stateless and JSON: any API replica can answer any request. Keys are required, so
        # DNS-rebinding protection (for unauthenticated local servers) is off then.
        self.sessions = StreamableHTTPSessionManager(
            app=self.server._lowlevel_server,
            stateless=True,
            json_response=True,
            security_settings=TransportSecuritySettings(
                enable_dns_rebinding_protection=not authenticator.enabled,
                allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*", "testserver"],
                allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
            ),
        )

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        from starlette.requests import Request
        from starlette.responses import JSONResponse

        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
        key = presented(headers)
        try:
            sign_in(self._authenticator, self._throttle, Request(scope), key, surface="mcp")
        except KneoError as exc:
            body = {"error": exc.code, "message": exc.message}
            out = error_headers(exc.http_status, exc.code, exc.retry_after)
            if exc.http_status == 401:
                out["WWW-Authenticate"] = bearer_challenge(key is not None)
            response = JSONResponse(body, status_code=exc.http_status, headers=out)
            await response(scope, receive, send)
            return
        await self.sessions.handle_request(scope, receive, send)


def mount(app: Starlette) -> McpEndpoint:
    """Serve the MCP tools at ``/mcp`` on the service ``app``; calls go to ``app`` itself.
    The app's lifespan runs the endpoint's session manager (``app.state.mcp``)."""
    from starlette.routing import Route

    endpoint = McpEndpoint(
        ApiBridge(in_process_client(app)), app.state.authenticator, app.state.sign_in_throttle
    )
    app.router.routes.append(Route("/mcp", endpoint=endpoint))
    app.state.mcp = endpoint
    return endpoint


def in_process_client(app: ASGIApp) -> Any:
    """An ``httpx2.AsyncClient`` that calls ``app`` (the service) without a socket."""
    import httpx2

    return httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="http://kneo.internal"
    )
