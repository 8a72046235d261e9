"""Semantic and governance diagnostics over a validated :class:`~kneo.spec.models.Spec`.

Each rule has a stable code (``E_*`` error, ``W_*`` warning, ``I_*`` info), a path into the
spec such as ``agent.tools[0]``, a message and a suggestion. ``CODES`` is the catalogue (the
table in ``docs/spec.md`` mirrors it; a test keeps them in step). Rules are pure functions of
the spec and the registries, except that ``module:function`` refs are located and parsed
(never imported) to check they exist and are safe.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Collection, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from kneo.runtimes import RuntimeRegistry
from kneo.spec.models import AgentSpec, Spec, StepSpec, ToolPolicy, ToolSelection, WorkflowSpec
from kneo.spec.refs import import_roots, inspect_ref, is_ref
from kneo.tools import ToolDefinition, ToolRegistry

Severity = Literal["error", "warning", "info"]

#: code -> (severity, one-line meaning). Keep ``docs/spec.md`` in step (tested).
CODES: dict[str, tuple[Severity, str]] = {
    "E_FILE_NOT_FOUND": ("error", "The spec, overlay or config file does not exist."),
    "E_YAML": ("error", "The file is not valid YAML (file and line given)."),
    "E_NOT_A_FILE": ("error", "The path is a device, pipe or socket, not a regular file."),
    "E_DOCUMENT_TOO_LARGE": ("error", "The document is over 8 MiB."),
    "E_DOCUMENT_TOO_DEEP": ("error", "The document nests more than 64 levels."),
    "E_DOCUMENT_TOO_COMPLEX": (
        "error",
        "Over 200,000 nodes (aliases expanded) or 1,000 aliases, or a recursive alias.",
    ),
    "E_NUMBER_TOO_LONG": (
        "error",
        "A number has more than 256 digits, however grouped (`1_000`, `0xFF`, `1:30:00`).",
    ),
    "E_NUMBER_OUT_OF_RANGE": ("error", "A number is not finite (`1e999`, `.inf`, `.nan`)."),
    "E_SCHEMA": ("error", "A field is unknown, missing or of the wrong type (field path given)."),
    "E_UNSUPPORTED_VERSION": (
        "error",
        "No `version`, an old one (run `kneo spec migrate`), or a future one.",
    ),
    "E_UNKNOWN_ENV": ("error", "`--env` names an environment the project does not declare."),
    "E_UNKNOWN_TOOL": (
        "error",
        "A tool name is neither registered, declared with an implementation, nor imported over MCP.",
    ),
    "E_UNKNOWN_REF": ("error", "A step, edge, selector or function ref does not resolve."),
    "E_DUPLICATE_ID": ("error", "Two steps, nodes or participants share an id."),
    "E_UNKNOWN_RUNTIME": ("error", "A runtime mode is not registered (known: native, bridge)."),
    "E_RUNTIME_NOT_ALLOWED": ("error", "`preferred_mode` is not in `allowed_modes`."),
    "E_EMPTY_WORKFLOW": ("error", "The workflow has no steps, nodes or participants."),
    "E_GRAPH_NO_START": ("error", "A graph workflow has no `start` node, or it is not a node."),
    "E_GRAPH_UNREACHABLE": ("error", "A graph node cannot be reached from `start`."),
    "E_INVALID_CONDITION": ("error", "An edge condition's regex does not compile."),
    "E_ROUTE_OPTION_UNKNOWN": (
        "error",
        "A route-selection human node in a graph has an option that is not a node id.",
    ),
    "E_UNSAFE_TOOL_IMPORT": (
        "error",
        "A tool implementation directly imports os, subprocess, shutil, socket, importlib or builtins.",
    ),
    "E_UNSAFE_FUNCTION_IMPORT": (
        "error",
        "A function step or predicate module directly imports an unsafe primitive.",
    ),
    "E_SECRET_UNDECLARED": (
        "error",
        "`api_key_env` or `secret_env` names a secret the project does not declare (or this environment does not allow).",
    ),
    "E_MCP_SERVER_UNDECLARED": (
        "error",
        "An `mcp.imports` entry names a server the project does not declare (or this environment does not allow).",
    ),
    "E_PROCESS_UNDECLARED": (
        "error",
        "An `mcp.imports` entry defines its own command: only declared servers (or signed bundles where allowed) start processes.",
    ),
    "E_DESTINATION_NOT_ALLOWED": (
        "error",
        "A `base_url` or MCP `url` is not on the environment's network allow-list (or is not an http(s) URL).",
    ),
    "E_URL_HAS_CREDENTIALS": ("error", "A URL carries a user name or password."),
    "E_FUNCTION_NOT_ALLOWED": (
        "error",
        "A function ref names a module outside the project that `functions.modules` does not list.",
    ),
    "E_POLICY_BLOCKED_CODE": (
        "error",
        "The environment policy blocks a diagnostic code that the spec triggers.",
    ),
    "E_POLICY_WARNING": ("error", "The environment policy fails on warnings and the spec has one."),
    "E_POLICY_HUMAN_REVIEW_REQUIRED": (
        "error",
        "The environment requires a human review step or tool approval.",
    ),
    "E_POLICY_TOOL_PERMISSIONS_REQUIRED": (
        "error",
        "The environment requires `policies.tool` on every agent with tools.",
    ),
    "E_POLICY_UNRESTRICTED_TOOLS": ("error", "The environment denies unrestricted tool selection."),
    "E_POLICY_GUARDRAILS_REQUIRED": (
        "error",
        "The environment requires guardrails on every agent.",
    ),
    "E_MCP_TOOL_UNKNOWN": (
        "error",
        "An `mcp.imports` entry lists a tool its server does not offer (`validate`/`lint` ask the server).",
    ),
    "W_MCP_UNREACHABLE": (
        "warning",
        "`validate`/`lint` could not reach an `mcp.imports` server to check its tool names.",
    ),
    "W_PROCESS_BUNDLE_ONLY": (
        "warning",
        "An `mcp.imports` command runs only from a signed bundle in this environment, never from a file or the API.",
    ),
    "W_TOOL_POLICY_UNRESTRICTED": (
        "warning",
        "`tools: all`, or a shorthand tool list without `policies.tool`.",
    ),
    "W_NETWORK_WITHOUT_ALLOWED_DOMAINS": (
        "warning",
        "A network tool is selected but `allowed_domains` is empty.",
    ),
    "W_SHELL_TOOL": ("warning", "A selected tool can run shell commands."),
    "W_FILESYSTEM_WRITE": (
        "warning",
        "A selected tool, or the tool policy, allows filesystem writes.",
    ),
    "W_TOOL_DENIED_BY_POLICY": (
        "warning",
        "An agent selects a tool its own `policies.tool` refuses (in `deny`, or not in `allow`): every call to it would be refused.",
    ),
    "W_TOOL_CAPABILITY_BLOCKED": (
        "warning",
        "A selected tool needs a capability the tool policy denies; its calls will be refused.",
    ),
    "W_HUMAN_APPROVAL_MISSING": (
        "warning",
        "Shell or file-writing tools without per-call approval, or unsafe imports, and no human step or review gate.",
    ),
    "W_DEPRECATED_FIELD": (
        "warning",
        "A v0 field (`agent.instructions`, `agent.max_iterations`); run `kneo spec migrate`.",
    ),
    "I_UNUSED_COMPONENT": ("info", "A component is declared but no step refers to it."),
    "I_NO_GUARDRAILS": ("info", "An agent declares no guardrails."),
}


@dataclass(frozen=True)
class Diagnostic:
    code: str
    severity: Severity
    path: str
    message: str
    suggestion: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def is_error(self) -> bool:
        return self.severity == "error"


def diag(code: str, path: str, message: str, suggestion: str | None = None) -> Diagnostic:
    """A diagnostic whose severity comes from the catalogue."""
    return Diagnostic(code, CODES[code][0], path, message, suggestion)


def has_errors(diagnostics: list[Diagnostic]) -> bool:
    return any(d.is_error for d in diagnostics)


# --------------------------------------------------------------------------- tool lookup


class ToolCatalog:
    """Tools a spec can select: the registry, ``components.tools`` with an implementation,
    and tools named by MCP imports. Spec-declared definitions win over the registry."""

    def __init__(self, spec: Spec, registry: ToolRegistry) -> None:
        self._registry = registry
        self._spec_tools: dict[str, ToolDefinition] = {}
        for name, comp in spec.components.tools.items():
            if comp.implementation or comp.external or name in registry:
                base = registry.get(name) if name in registry and not comp.implementation else None
                self._spec_tools[name] = ToolDefinition(
                    name=name,
                    description=comp.description or (base.description if base else ""),
                    parameters=comp.parameters
                    if comp.implementation or not base
                    else base.parameters,
                    capabilities=frozenset(comp.capabilities)
                    | (base.capabilities if base else frozenset()),
                    requires_approval=comp.requires_approval
                    or bool(base and base.requires_approval),
                    implementation=comp.implementation or (base.implementation if base else None),
                    external=comp.external,
                    result_schema=comp.result_schema,
                )
        self._mcp: dict[str, str] = {t: imp.name for imp in spec.mcp.imports for t in imp.tools}

    def __contains__(self, name: object) -> bool:
        return name in self._spec_tools or name in self._registry or name in self._mcp

    def get(self, name: str) -> ToolDefinition | None:
        if name in self._spec_tools:
            return self._spec_tools[name]
        if name in self._registry:
            return self._registry.get(name)
        if name in self._mcp:
            server = self._mcp[name]
            return ToolDefinition(
                name=name, description=f"MCP tool from '{server}'", mcp_server=server
            )
        return None

    def all_names(self) -> list[str]:
        return list(dict.fromkeys([*self._registry.names(), *self._spec_tools, *self._mcp]))

    def selected(self, agent: AgentSpec) -> list[str]:
        return self.all_names() if agent.tools_unrestricted else agent.tool_names()


def tool_paths(agent: AgentSpec, prefix: str) -> list[tuple[str, str]]:
    """``(tool name, path)`` for each selected tool as written in the spec."""
    if isinstance(agent.tools, list):
        return [(t, f"{prefix}.tools[{i}]") for i, t in enumerate(agent.tools)]
    if isinstance(agent.tools, ToolSelection):
        return [
            (t, f"{prefix}.tools.include[{i}]")
            for i, t in enumerate(agent.tools.include)
            if t not in agent.tools.exclude
        ]
    return []


def agent_locations(spec: Spec) -> Iterator[tuple[AgentSpec, str]]:
    """Every agent with the path prefix it lives at."""
    if spec.agent is not None:
        yield spec.agent, "agent"
    for name, agent in spec.components.agents.items():
        yield agent, f"components.agents.{name}"


def workflow_members(spec: Spec) -> tuple[str, list[StepSpec]]:
    wf = spec.workflow
    if wf is None:
        return "workflow", []
    key = {"sequential": "steps", "graph": "nodes"}.get(wf.family, "participants")
    return f"workflow.{key}", wf.members()


def function_refs(spec: Spec) -> Iterator[tuple[str, str]]:
    """``(path, module:function)`` for every ref a spec asks Kneo to import: function
    components and steps, edge predicates, tool implementations."""
    for name, comp in spec.components.functions.items():
        yield f"components.functions.{name}.ref", comp.ref
    for name, tool in spec.components.tools.items():
        if tool.implementation:
            yield f"components.tools.{name}.implementation", tool.implementation
    at, members = workflow_members(spec)
    for i, step in enumerate(members):
        own = step.kind == "function" and step.ref not in spec.components.functions
        if own and is_ref(step.ref):
            yield f"{at}[{i}].ref", step.ref
    for i, edge in enumerate(spec.workflow.edges if spec.workflow else []):
        predicate = edge.condition.predicate if edge.condition else None
        if predicate is not None and is_ref(predicate):
            yield f"workflow.edges[{i}].condition.predicate", predicate


def has_human_approval(spec: Spec, catalog: ToolCatalog | None = None) -> bool:
    """A human step, a step review gate, or tool calls that need a person's approval."""
    _, members = workflow_members(spec)
    if any(s.kind == "human" or (s.human_review and _review_active(s)) for s in members):
        return True
    for agent, _ in agent_locations(spec):
        if agent.approval_required:
            return True
        if catalog is not None and any(
            (d := catalog.get(t)) is not None and d.requires_approval
            for t in catalog.selected(agent)
        ):
            return True
    return any(t.requires_approval for t in spec.components.tools.values())


def _review_active(step: StepSpec) -> bool:
    r = step.human_review
    return bool(r and (r.requires_confirmation or r.review_output or r.input_schema))


# --------------------------------------------------------------------------- rules


_INVALIDATING = threading.Lock()


def refresh_import_caches() -> None:
    """Forget what the import system cached about directories, so a long-lived process sees
    modules added since; one thread at a time, since two concurrent calls delete the same
    ``sys.path_importer_cache`` entries (KeyError in 3.11)."""
    import importlib

    with _INVALIDATING:
        importlib.invalidate_caches()


def validate_spec(
    spec: Spec,
    *,
    tool_registry: ToolRegistry,
    runtime_registry: RuntimeRegistry,
    base_dir: Path | None = None,
    roots: list[Path] | None = None,
) -> list[Diagnostic]:
    """All diagnostics for ``spec``, errors first, then warnings, then info (stable order).

    ``roots``: the :func:`~kneo.spec.refs.import_roots` of ``base_dir``, given by a caller
    that checks many specs at once and has just called :func:`refresh_import_caches` (the
    controller: both cost more than the rules of a small spec)."""
    if roots is None:
        refresh_import_caches()
        roots = import_roots(base_dir)
    catalog = ToolCatalog(spec, tool_registry)
    out: list[Diagnostic] = []
    out += _agent_rules(spec, catalog, runtime_registry)
    out += _tool_component_rules(spec, roots)
    unsafe_tools = [d for d in out if d.code == "E_UNSAFE_TOOL_IMPORT"]
    out += _selected_tool_safety(spec, catalog, roots, already={d.path for d in unsafe_tools})
    out += _workflow_rules(spec, roots)
    out += _function_component_rules(spec, roots)
    out += _approval_rule(spec, catalog, out)
    out += _unused_rules(spec)
    order = {"error": 0, "warning": 1, "info": 2}
    return sorted(_dedupe(out), key=lambda d: order[d.severity])


def _dedupe(items: list[Diagnostic]) -> list[Diagnostic]:
    return list(dict.fromkeys(items))


def _agent_rules(spec: Spec, catalog: ToolCatalog, runtimes: RuntimeRegistry) -> list[Diagnostic]:
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
    """Every place an agent names a tool names a registered one (``E_UNKNOWN_TOOL``)."""
    out: list[Diagnostic] = []
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
    if not agent.guardrails:
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


def _unsafe(code: str, path: str, ref: str, modules: tuple[str, ...]) -> Diagnostic:
    return diag(
        code,
        path,
        f"'{ref}' directly imports {', '.join(modules)}.",
        "move privileged work behind a reviewed tool with declared capabilities, or remove the import",
    )


def _ref_problem(path: str, ref: str, problem: str | None) -> Diagnostic:
    return diag(
        "E_UNKNOWN_REF",
        path,
        f"Cannot resolve '{ref}': {problem}.",
        "check the module path and function name",
    )


def _tool_component_rules(spec: Spec, roots: list[Path]) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for name, comp in spec.components.tools.items():
        if not comp.implementation:
            continue
        path = f"components.tools.{name}.implementation"
        info = inspect_ref(comp.implementation, roots)
        if not info.defined:
            out.append(_ref_problem(path, comp.implementation, info.problem))
        if info.unsafe_imports:
            out.append(
                _unsafe("E_UNSAFE_TOOL_IMPORT", path, comp.implementation, info.unsafe_imports)
            )
    return out


def _selected_tool_safety(
    spec: Spec, catalog: ToolCatalog, roots: list[Path], already: set[str]
) -> list[Diagnostic]:
    """Registry tools with a dotted implementation are checked where an agent selects them."""
    out: list[Diagnostic] = []
    for agent, at in agent_locations(spec):
        paths = dict(tool_paths(agent, at))
        for name in catalog.selected(agent):
            definition = catalog.get(name)
            if definition is None or not definition.implementation or name in spec.components.tools:
                continue
            info = inspect_ref(definition.implementation, roots)
            if info.unsafe_imports:
                out.append(
                    _unsafe(
                        "E_UNSAFE_TOOL_IMPORT",
                        paths.get(name, f"{at}.tools"),
                        definition.implementation,
                        info.unsafe_imports,
                    )
                )
    return out


def _function_component_rules(spec: Spec, roots: list[Path]) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for name, comp in spec.components.functions.items():
        path = f"components.functions.{name}.ref"
        info = inspect_ref(comp.ref, roots)
        if not info.defined:
            out.append(_ref_problem(path, comp.ref, info.problem))
        if info.unsafe_imports:
            out.append(_unsafe("E_UNSAFE_FUNCTION_IMPORT", path, comp.ref, info.unsafe_imports))
    return out


def _workflow_rules(spec: Spec, roots: list[Path]) -> list[Diagnostic]:
    wf = spec.workflow
    if wf is None:
        return []
    out: list[Diagnostic] = []
    at, members = workflow_members(spec)
    if not members:
        out.append(
            diag("E_EMPTY_WORKFLOW", at, f"The {wf.family} workflow has no {at.split('.')[-1]}.")
        )
        return out
    counts = Counter(s.id for s in members)
    seen: set[str] = set()
    for i, step in enumerate(members):
        path = f"{at}[{i}]"
        if counts[step.id] > 1 and step.id in seen:
            out.append(
                diag(
                    "E_DUPLICATE_ID",
                    f"{path}.id",
                    f"Id '{step.id}' is used more than once.",
                    "give every step a unique id",
                )
            )
        seen.add(step.id)
        out += _step_ref(spec, step, f"{path}.ref", roots)
    ids = set(counts)
    if wf.family == "graph":
        out += _graph_rules(spec, ids, roots)
    if wf.family == "handoff" and wf.selector is not None:
        for i, entry in enumerate(wf.selector.sequence):
            if entry not in ids:
                out.append(
                    diag(
                        "E_UNKNOWN_REF",
                        f"workflow.selector.sequence[{i}]",
                        f"Selector entry '{entry}' is not a participant id.",
                    )
                )
    return out


def _step_ref(spec: Spec, step: StepSpec, path: str, roots: list[Path]) -> list[Diagnostic]:
    comps = spec.components
    if step.kind == "agent":
        if step.ref not in spec.all_agents():
            known = ", ".join(spec.all_agents()) or "none declared"
            return [
                diag(
                    "E_UNKNOWN_REF",
                    path,
                    f"Agent '{step.ref}' is not declared (agents: {known}).",
                    "declare it as the top-level agent or under components.agents",
                )
            ]
        return []
    if step.kind == "human":
        if step.ref not in comps.humans:
            return [
                diag(
                    "E_UNKNOWN_REF",
                    path,
                    f"Human '{step.ref}' is not declared under components.humans.",
                    "add components.humans." + step.ref,
                )
            ]
        return []
    if step.ref in comps.functions:
        return []
    if not is_ref(step.ref):
        return [
            diag(
                "E_UNKNOWN_REF",
                path,
                f"Function '{step.ref}' is not declared under components.functions.",
                "declare it there or use a 'module:function' ref",
            )
        ]
    info = inspect_ref(step.ref, roots)
    out: list[Diagnostic] = []
    if not info.defined:
        out.append(_ref_problem(path, step.ref, info.problem))
    if info.unsafe_imports:
        out.append(_unsafe("E_UNSAFE_FUNCTION_IMPORT", path, step.ref, info.unsafe_imports))
    return out


def _graph_rules(spec: Spec, ids: set[str], roots: list[Path]) -> list[Diagnostic]:
    """A graph's edges and stops name its nodes, their conditions compile, and every node is
    reachable from ``start`` (over edges and ``on_stop`` targets)."""
    wf = spec.workflow
    assert wf is not None
    adjacency: dict[str, set[str]] = {i: set() for i in ids}
    out = _edge_rules(spec, ids, roots, adjacency)
    out += _on_stop_rules(wf, ids, adjacency)
    out += _route_option_rules(spec, ids)
    return out + _reachability_rules(wf, ids, adjacency)


def _edge_rules(
    spec: Spec, ids: set[str], roots: list[Path], adjacency: dict[str, set[str]]
) -> list[Diagnostic]:
    """Each edge's endpoints and condition; records the edge in ``adjacency``."""
    wf = spec.workflow
    assert wf is not None
    out: list[Diagnostic] = []
    for i, edge in enumerate(wf.edges):
        for end, name in (("from", edge.source), ("to", edge.target)):
            if name not in ids:
                out.append(
                    diag(
                        "E_UNKNOWN_REF",
                        f"workflow.edges[{i}].{end}",
                        f"Edge endpoint '{name}' is not a node id.",
                    )
                )
        if edge.source in ids and edge.target in ids:
            adjacency[edge.source].add(edge.target)
        cond = edge.condition
        if cond is not None and cond.regex is not None:
            try:
                re.compile(cond.regex)
            except re.error as exc:
                out.append(
                    diag(
                        "E_INVALID_CONDITION",
                        f"workflow.edges[{i}].condition.regex",
                        f"Invalid regex: {exc}.",
                    )
                )
        if (
            cond is not None
            and cond.predicate is not None
            and (is_ref(cond.predicate) or cond.predicate in spec.components.functions)
        ):
            # A bare name is a predicate registered with the engine at run time.
            path = f"workflow.edges[{i}].condition.predicate"
            ref = (
                spec.components.functions[cond.predicate].ref
                if cond.predicate in spec.components.functions
                else cond.predicate
            )
            info = inspect_ref(ref, roots)
            if not info.defined:
                out.append(_ref_problem(path, ref, info.problem))
            if info.unsafe_imports:
                out.append(_unsafe("E_UNSAFE_FUNCTION_IMPORT", path, ref, info.unsafe_imports))
    return out


def _on_stop_rules(
    wf: WorkflowSpec, ids: set[str], adjacency: dict[str, set[str]]
) -> list[Diagnostic]:
    """A stopped loop goes on at its ``on_stop`` node, which must exist."""
    out: list[Diagnostic] = []
    for i, member in enumerate(wf.nodes):
        stop = member.human_review.on_stop if member.human_review else None
        if stop is None:
            continue
        if stop in ids and member.id in adjacency:
            adjacency[member.id].add(stop)  # a stopped loop goes on there
        elif stop not in ids:
            out.append(
                diag(
                    "E_UNKNOWN_REF",
                    f"workflow.nodes[{i}].human_review.on_stop",
                    f"on_stop '{stop}' is not a node id.",
                )
            )
    return out


def _reachability_rules(
    wf: WorkflowSpec, ids: set[str], adjacency: dict[str, set[str]]
) -> list[Diagnostic]:
    """The graph starts at a node, and every node can be reached from it."""
    out: list[Diagnostic] = []
    if wf.start is None or wf.start not in ids:
        message = (
            "The graph has no 'start' node."
            if wf.start is None
            else f"Start node '{wf.start}' is not a node id."
        )
        out.append(
            diag("E_GRAPH_NO_START", "workflow.start", message, "set workflow.start to a node id")
        )
        return out
    reached = {wf.start}
    frontier = [wf.start]
    while frontier:
        for nxt in adjacency[frontier.pop()]:
            if nxt not in reached:
                reached.add(nxt)
                frontier.append(nxt)
    for i, node in enumerate(wf.nodes):
        if node.id not in reached:
            out.append(
                diag(
                    "E_GRAPH_UNREACHABLE",
                    f"workflow.nodes[{i}]",
                    f"Node '{node.id}' cannot be reached from '{wf.start}'.",
                    "add an edge to it or remove it",
                )
            )
    return out


def _route_option_rules(spec: Spec, ids: set[str]) -> list[Diagnostic]:
    """A human node whose options name graph nodes is a route selection (kind ``route``);
    the engine treats it as one only when *every* option is a node id, so an option that is
    not (a typo, a removed node) would silently turn the route into a plain choice."""
    wf = spec.workflow
    assert wf is not None
    out: list[Diagnostic] = []
    for node in wf.nodes:
        human = spec.components.humans.get(node.ref) if node.kind == "human" else None
        if human is None or not set(human.options) & ids:
            continue
        for j, option in enumerate(human.options):
            if option not in ids:
                out.append(
                    diag(
                        "E_ROUTE_OPTION_UNKNOWN",
                        f"components.humans.{node.ref}.options[{j}]",
                        f"Route option '{option}' of human node '{node.id}' is not a node id "
                        f"(nodes: {', '.join(sorted(ids))}).",
                        "name only node ids in a route selection's options",
                    )
                )
    return out


_PRIVILEGED = frozenset({"shell", "filesystem_write"})


def _approval_rule(spec: Spec, catalog: ToolCatalog, found: list[Diagnostic]) -> list[Diagnostic]:
    privileged: list[str] = []
    for agent, _ in agent_locations(spec):
        approved = set(agent.approval_required)
        for name in catalog.selected(agent):
            d = catalog.get(name)
            if (
                d is not None
                and d.capabilities & _PRIVILEGED
                and not d.requires_approval
                and name not in approved
            ):
                privileged.append(name)
    unsafe = any(d.code.startswith("E_UNSAFE_") for d in found)
    if not (privileged or unsafe) or _has_human_step(spec):
        return []
    what = (
        f"privileged tools ({', '.join(dict.fromkeys(privileged))})"
        if privileged
        else "unsafe imports"
    )
    return [
        diag(
            "W_HUMAN_APPROVAL_MISSING",
            "workflow" if spec.workflow is not None else "agent",
            f"The spec exposes {what} without a human approval step.",
            "add a 'kind: human' step, a step human_review gate, or agent.approval_required",
        )
    ]


def _has_human_step(spec: Spec) -> bool:
    _, members = workflow_members(spec)
    return any(s.kind == "human" or (s.human_review and _review_active(s)) for s in members)


def _unused_rules(spec: Spec) -> list[Diagnostic]:
    if spec.workflow is None:
        return []
    _, members = workflow_members(spec)
    refs = {s.ref for s in members}
    preds = {
        e.condition.predicate for e in spec.workflow.edges if e.condition and e.condition.predicate
    }
    out: list[Diagnostic] = []
    for kind, names in (
        ("agents", spec.components.agents),
        ("functions", spec.components.functions),
        ("humans", spec.components.humans),
    ):
        for name in names:
            if name not in refs and name not in preds:
                out.append(
                    diag(
                        "I_UNUSED_COMPONENT",
                        f"components.{kind}.{name}",
                        f"Component '{name}' is not used by any step.",
                    )
                )
    return out
