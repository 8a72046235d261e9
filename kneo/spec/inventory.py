"""What a spec declares and selects, and where: the walks every check shares.

The tools an agent may select (:class:`ToolCatalog`: the registry, ``components.tools`` and
MCP imports), each agent with its path, the workflow's members, the ``module:function`` refs
Kneo would import, and whether a person approves anything. Used by the diagnostics, the
compiler and the environment's policy alike, so all of them read a spec the same way.
"""

from __future__ import annotations

from collections.abc import Iterator

from kneo.spec.models import AgentSpec, Spec, StepSpec, ToolSelection, WorkflowSpec
from kneo.spec.refs import is_ref
from kneo.tools import ToolDefinition, ToolRegistry


class ToolCatalog:
    """Tools a spec can select: the registry, ``components.tools`` with an implementation,
    and tools named by MCP imports. Spec-declared definitions win over the registry."""

    def __init__(self, spec: Spec, registry: ToolRegistry) -> None:
        self._registry = registry
        self._spec_tools: dict[str, ToolDefinition] = {}
        self._skills = spec.skills
        for name, comp in spec.components.tools.items():
            if comp.agent is not None:
                self._spec_tools[name] = agent_tool(name, comp.description, comp.agent)
                continue
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
        """The agent's own selection, then the tools its declared skills bring."""
        own = self.all_names() if agent.tools_unrestricted else agent.tool_names()
        brought = [t for s in agent.skills if s in self._skills for t in self._skills[s].tools]
        return list(dict.fromkeys([*own, *brought]))


#: What the model sends an agent answering as a tool: the agent's input text.
AGENT_TOOL_PARAMETERS = {
    "type": "object",
    "properties": {"input": {"type": "string", "description": "What to ask the agent."}},
    "required": ["input"],
    "additionalProperties": False,
}


def agent_tool(name: str, description: str, agent: str) -> ToolDefinition:
    """The definition of a tool an agent of the spec answers."""
    return ToolDefinition(
        name=name,
        description=description or f"Ask the agent '{agent}'.",
        parameters=AGENT_TOOL_PARAMETERS,
        agent=agent,
    )


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
    for agent, at in agent_locations(spec):
        if agent.implementation:
            yield f"{at}.implementation", agent.implementation
        for i, layer in enumerate(agent.middleware):
            function = getattr(layer, "function", None)
            if function is not None:
                yield f"{at}.middleware[{i}].function", function
    for name, nested in spec.components.workflows.items():
        for i, step in enumerate(nested.members()):
            own = step.kind == "function" and step.ref not in spec.components.functions
            if own and is_ref(step.ref):
                yield f"components.workflows.{name}.{_member_key(nested)}[{i}].ref", step.ref
        for i, edge in enumerate(nested.edges):
            predicate = edge.condition.predicate if edge.condition else None
            if predicate is not None and is_ref(predicate):
                yield f"components.workflows.{name}.edges[{i}].condition.predicate", predicate


def _member_key(workflow: WorkflowSpec) -> str:
    return {"sequential": "steps", "graph": "nodes"}.get(workflow.family, "participants")


def has_human_step(spec: Spec) -> bool:
    """A ``kind: human`` step, or a step with an active ``human_review`` gate."""
    _, members = workflow_members(spec)
    return any(s.kind == "human" or (s.human_review and _review_active(s)) for s in members)


def has_human_approval(spec: Spec, catalog: ToolCatalog | None = None) -> bool:
    """A human step, a step review gate, or tool calls that need a person's approval."""
    if has_human_step(spec):
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
