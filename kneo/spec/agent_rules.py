"""Diagnostics of each agent: the tools it names exist, its runtime modes exist and agree,
what its tools may do against its ``policies.tool``, and fields that are deprecated or missing.
"""

from __future__ import annotations

from collections.abc import Collection

from kneo.runtimes import RuntimeRegistry
from kneo.spec.diagnostics import Diagnostic, diag
from kneo.spec.inventory import ToolCatalog, agent_locations, tool_paths
from kneo.spec.models import AgentSpec, Spec, ToolChoiceName, ToolPolicy
from kneo.tools import ToolDefinition


def agent_rules(spec: Spec, catalog: ToolCatalog, runtimes: RuntimeRegistry) -> list[Diagnostic]:
    """Every agent: the tools it names exist, its runtime modes exist and agree, its tool
    policy, and fields that are deprecated or missing."""
    out: list[Diagnostic] = []
    for agent, at in agent_locations(spec):
        out += _agent_tool_names(spec, agent, at, catalog)
        out += _agent_runtime_rules(agent, at, runtimes)
        out += _tool_policy_rules(agent, at, catalog)
        out += _agent_field_rules(agent, at)
    return out


def _agent_tool_names(
    spec: Spec, agent: AgentSpec, at: str, catalog: ToolCatalog
) -> list[Diagnostic]:
    """Every place an agent names a tool names a registered one (``E_UNKNOWN_TOOL``); a
    bridged agent's (``implementation``) are its framework's own, known at run time."""
    out: list[Diagnostic] = []
    if agent.implementation is not None:
        return out
    for name, path in tool_paths(agent, at):
        if name not in catalog:
            out.append(
                diag(
                    "E_UNKNOWN_TOOL",
                    path,
                    f"Tool '{name}' is not registered.",
                    "register it in the project's tool registry (tool_registry in "
                    ".kneo/config.yaml, or --tools module:factory), declare it under "
                    "components.tools with an implementation, or list it in an "
                    "mcp.imports entry's tools",
                )
            )
    named = [(f"{at}.approval_required[{i}]", n) for i, n in enumerate(agent.approval_required)]
    named += [(f"{at}.tool_input.{n}", n) for n in agent.tool_input]
    if agent.memory.compress_with:
        named.append((f"{at}.memory.compress_with", agent.memory.compress_with))
    # tools: all with an MCP import that lists no tools: any name may be the server's
    if not (agent.tools_unrestricted and any(not imp.tools for imp in spec.mcp.imports)):
        named += [
            (f"{at}.model.script[{i}].tool_calls[{j}].name", call.name)
            for i, turn in enumerate(agent.model.script)
            for j, call in enumerate(turn.tool_calls)
        ]
        if isinstance(agent.model.tool_choice, ToolChoiceName):
            named.append((f"{at}.model.tool_choice.name", agent.model.tool_choice.name))
    out += [
        diag("E_UNKNOWN_TOOL", path, f"Tool '{name}' is not registered.")
        for path, name in named
        if name not in catalog
    ]
    return out


def _agent_runtime_rules(agent: AgentSpec, at: str, runtimes: RuntimeRegistry) -> list[Diagnostic]:
    """The runtime modes an agent allows and prefers exist and agree."""
    out: list[Diagnostic] = []
    prefs = agent.runtime_preferences
    for i, mode in enumerate(prefs.allowed_modes):
        if mode not in runtimes:
            out.append(
                diag(
                    "E_UNKNOWN_RUNTIME",
                    f"{at}.runtime_preferences.allowed_modes[{i}]",
                    f"Runtime mode '{mode}' is not registered.",
                    f"use one of: {', '.join(runtimes.names())}",
                )
            )
    if prefs.preferred_mode not in runtimes:
        out.append(
            diag(
                "E_UNKNOWN_RUNTIME",
                f"{at}.runtime_preferences.preferred_mode",
                f"Runtime mode '{prefs.preferred_mode}' is not registered.",
                f"use one of: {', '.join(runtimes.names())}",
            )
        )
    elif prefs.allowed_modes and prefs.preferred_mode not in prefs.allowed_modes:
        out.append(
            diag(
                "E_RUNTIME_NOT_ALLOWED",
                f"{at}.runtime_preferences.preferred_mode",
                f"Preferred mode '{prefs.preferred_mode}' is not in allowed_modes {prefs.allowed_modes}.",
                "add it to allowed_modes or pick an allowed mode",
            )
        )
    return out


def _agent_field_rules(agent: AgentSpec, at: str) -> list[Diagnostic]:
    """Deprecated fields and the missing guardrails."""
    out: list[Diagnostic] = []
    if agent.instructions is not None:
        out.append(
            diag(
                "W_DEPRECATED_FIELD",
                f"{at}.instructions",
                "'instructions' is deprecated; use 'system_prompt'.",
                "run 'kneo spec migrate'",
            )
        )
    if agent.max_iterations is not None:
        out.append(
            diag(
                "W_DEPRECATED_FIELD",
                f"{at}.max_iterations",
                "'max_iterations' is deprecated; use 'strategy.max_iterations'.",
                "run 'kneo spec migrate'",
            )
        )
    if not agent.has_guardrails:
        out.append(
            diag(
                "I_NO_GUARDRAILS",
                f"{at}.guardrails",
                f"Agent '{agent.name}' declares no guardrails.",
            )
        )
    return out


def _tool_policy_rules(agent: AgentSpec, at: str, catalog: ToolCatalog) -> list[Diagnostic]:
    """What an agent's tools may do against what its ``policies.tool`` lets them."""
    policy = agent.policies.tool
    selected = catalog.selected(agent)
    out = _tool_selection_rules(agent, at, selected, policy)
    paths = dict(tool_paths(agent, at))
    if policy is not None and not agent.tools_unrestricted:  # ``all`` is narrowed by design
        out += _denied_tools(agent, paths, policy)
    for name in selected:
        definition = catalog.get(name)
        if definition is not None:
            path = paths.get(name, f"{at}.tools")
            out += _capability_rules(name, definition.capabilities, path, policy)
    return out + _policy_grant_rules(agent, at, selected, policy, catalog)


def _denied_tools(agent: AgentSpec, paths: dict[str, str], policy: ToolPolicy) -> list[Diagnostic]:
    """Tools the agent lists and its own policy refuses: the model is offered them and every
    call comes back refused, so the run would "succeed" on the refusal."""
    out: list[Diagnostic] = []
    for name, path in paths.items():
        if name in policy.deny:
            why = "is in policies.tool.deny"
        elif policy.allow is not None and name not in policy.allow:
            why = "is not in policies.tool.allow"
        else:
            continue
        out.append(
            diag(
                "W_TOOL_DENIED_BY_POLICY",
                path,
                f"Agent '{agent.name}' selects tool '{name}', which {why}: every call to it "
                "would be refused.",
                f"add '{name}' to policies.tool.allow (and out of deny), or drop it from tools",
            )
        )
    return out


def _tool_selection_rules(
    agent: AgentSpec, at: str, selected: list[str], policy: ToolPolicy | None
) -> list[Diagnostic]:
    """How the tools are chosen: every tool, or a shorthand list with no policy."""
    out: list[Diagnostic] = []
    if agent.tools_unrestricted:
        out.append(
            diag(
                "W_TOOL_POLICY_UNRESTRICTED",
                f"{at}.tools",
                f"Agent '{agent.name}' may call every registered tool.",
                "list the tools with 'tools: {include: [...]}' and add 'policies.tool'",
            )
        )
    elif agent.tools_shorthand and selected and policy is None:
        out.append(
            diag(
                "W_TOOL_POLICY_UNRESTRICTED",
                f"{at}.tools",
                f"Agent '{agent.name}' selects tools with the shorthand list and no 'policies.tool'.",
                "use 'tools: {include: [...]}' and declare 'policies.tool' (allow, network, filesystem, shell)",
            )
        )
    return out


_BLOCKED = "W_TOOL_CAPABILITY_BLOCKED"


def _capability_rules(
    name: str, caps: Collection[str], path: str, policy: ToolPolicy | None
) -> list[Diagnostic]:
    """One tool's capabilities (network, shell, files) against the agent's policy."""

    def finding(code: str, does: str, suggestion: str | None = None) -> Diagnostic:
        return diag(code, path, f"Tool '{name}' {does}.", suggestion)

    def denied(switch: str) -> bool:
        return policy is not None and not bool(getattr(policy, switch))

    out: list[Diagnostic] = []
    if "network" in caps:
        if denied("network"):
            out.append(
                finding(
                    _BLOCKED,
                    "needs network access but policies.tool.network is false",
                    "set policies.tool.network: true with allowed_domains, or drop the tool",
                )
            )
        elif policy is None or not policy.allowed_domains:
            out.append(
                finding(
                    "W_NETWORK_WITHOUT_ALLOWED_DOMAINS",
                    "uses the network and no allowed_domains restrict it",
                    "set policies.tool.allowed_domains",
                )
            )
    if "shell" in caps:
        out.append(
            finding(_BLOCKED, "needs shell access but policies.tool.shell is false")
            if denied("shell")
            else finding(
                "W_SHELL_TOOL",
                "can run shell commands",
                "require approval for it (agent.approval_required)",
            )
        )
    if "filesystem_write" in caps:
        out.append(
            finding(_BLOCKED, "writes files but policies.tool.filesystem does not allow writes")
            if denied("filesystem_write")
            else finding("W_FILESYSTEM_WRITE", "can write files", "require approval for it")
        )
    elif "filesystem_read" in caps and denied("filesystem_read"):
        out.append(finding(_BLOCKED, "reads files but policies.tool.filesystem is false"))
    return out


def _policy_grant_rules(
    agent: AgentSpec,
    at: str,
    selected: list[str],
    policy: ToolPolicy | None,
    catalog: ToolCatalog,
) -> list[Diagnostic]:
    """What the policy grants beyond the tools (writes, shell) is worth a warning itself."""
    out: list[Diagnostic] = []
    if policy is not None and policy.filesystem_write:
        out.append(
            diag(
                "W_FILESYSTEM_WRITE",
                f"{at}.policies.tool.filesystem",
                f"Agent '{agent.name}' may write to the filesystem.",
            )
        )
    if (
        policy is not None
        and policy.shell
        and not any("shell" in (catalog.get(n) or ToolDefinition(n)).capabilities for n in selected)
    ):
        out.append(
            diag(
                "W_SHELL_TOOL",
                f"{at}.policies.tool.shell",
                f"Agent '{agent.name}' is allowed shell access.",
            )
        )
    return out
