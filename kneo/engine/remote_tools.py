"""Tools served from outside the process (``mcp.imports``): the engine's side of the seam.

The engine never imports the MCP SDK. The platform injects an :data:`McpConnector`
(``kneo.mcp.client.connector``) that opens a run's :class:`McpSessions`; the engine opens
them on first use (:class:`LazySessions`) and closes them when the run returns, paused or
not. An agent's MCP tools then go through the same :class:`~kneo.engine.tool_guard.ToolGuard`
as local ones: the server's JSON Schema validates the arguments, ``policies.tool`` allows or
denies, ``approval_required`` pauses, traces are redacted. A server that is down or slow is a
tool error the model reads, never a failed step.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from kneo.errors import AccessDenied
from kneo.policy.access import HostAccess
from kneo.spec.models import AgentSpec, McpImport
from kneo.tools import ToolDefinition, ToolHandler


class McpSessions(Protocol):
    """One run's connections to its MCP servers (opened lazily, per server)."""

    def list_tools(self, server: str) -> list[ToolDefinition]:
        """The server's tools (``mcp_server`` set), or raise when it cannot be reached."""
        ...

    def call_tool(self, server: str, name: str, arguments: Mapping[str, Any]) -> str:
        """The call's text result; raises on a tool error or an unreachable server."""
        ...

    def close(self) -> None: ...


#: Opens a run's sessions to its imports, each as the run's grant allows (``None``: the
#: engine runs outside a platform, e.g. a workflow built in code).
McpConnector = Callable[[Sequence[McpImport], HostAccess | None], McpSessions]


class LazySessions:
    """A run's MCP sessions, opened by the connector on first use and closed with the run."""

    def __init__(
        self,
        connector: McpConnector | None,
        imports: Sequence[McpImport],
        access: HostAccess | None = None,
    ) -> None:
        self._connector = connector
        self._access = access
        self.imports = tuple(imports)
        self._sessions: McpSessions | None = None
        self._lock = threading.Lock()

    @property
    def available(self) -> bool:
        return self._connector is not None and bool(self.imports)

    def get(self) -> McpSessions:
        with self._lock:
            if self._sessions is None:
                if self._connector is None:
                    raise RuntimeError("no MCP connector is configured")
                self._sessions = self._connector(self.imports, self._access)
            return self._sessions

    def close(self) -> None:
        with self._lock:
            sessions, self._sessions = self._sessions, None
        if sessions is not None:
            sessions.close()


def resolve_mcp_tools(
    tools: Iterable[ToolDefinition], agent: AgentSpec, sessions: LazySessions | None
) -> tuple[list[ToolDefinition], dict[str, ToolHandler]]:
    """The step's tools with MCP ones as their server describes them, and their handlers.

    A compiled MCP tool is a placeholder (name and server); here it takes the server's
    description and argument schema, keeping what the spec decided (``requires_approval``).
    An agent with ``tools: all`` also gets every tool of an import that lists none. A server
    that cannot be listed keeps its placeholders: calling one then fails as a tool error.
    """
    resolved = list(tools)
    if sessions is None or not sessions.available:
        return resolved, {}
    servers = {d.mcp_server for d in resolved if d.mcp_server}
    if agent.tools_unrestricted:
        servers |= {imp.name for imp in sessions.imports if not imp.tools}
    listings: dict[str, dict[str, ToolDefinition]] = {}
    for server in sorted(s for s in servers if s):
        try:
            listings[server] = {d.name: d for d in sessions.get().list_tools(server)}
        except AccessDenied:
            raise  # the project does not allow the server: the step fails, nothing starts
        except Exception:  # unreachable now: its calls report the error to the model
            listings[server] = {}
    out: list[ToolDefinition] = []
    for definition in resolved:
        offered = listings.get(definition.mcp_server or "", {}).get(definition.name)
        out.append(_merge(definition, offered) if offered else definition)
    if agent.tools_unrestricted:
        have = {d.name for d in out}
        for imp in sessions.imports:
            if imp.tools:
                continue
            for name, offered in listings.get(imp.name, {}).items():
                if name not in have:
                    have.add(name)
                    out.append(
                        _merge(
                            ToolDefinition(
                                name=name,
                                mcp_server=imp.name,
                                requires_approval=name in agent.approval_required,
                            ),
                            offered,
                        )
                    )
    handlers = {
        d.name: _handler(sessions, d.mcp_server, d.name) for d in out if d.mcp_server is not None
    }
    return out, handlers


def _merge(compiled: ToolDefinition, offered: ToolDefinition) -> ToolDefinition:
    return ToolDefinition(
        name=compiled.name,
        description=offered.description or compiled.description,
        parameters=offered.parameters,
        capabilities=compiled.capabilities,
        requires_approval=compiled.requires_approval,
        mcp_server=compiled.mcp_server,
    )


def _handler(sessions: LazySessions, server: str, name: str) -> ToolHandler:
    def call(arguments: dict[str, Any]) -> str:
        return sessions.get().call_tool(server, name, arguments)

    return call
