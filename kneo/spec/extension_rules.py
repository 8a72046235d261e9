"""Diagnostics of skills, middleware, agents answering as tools and agents backed by
workflows: every name they use is declared, every ``module:function`` a middleware names is a
function of the project (the grant's own check runs with the other refs, in
:func:`kneo.spec.inventory.function_refs`), and no agent reaches itself through them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from kneo.spec.diagnostics import Diagnostic, diag
from kneo.spec.inventory import ToolCatalog, agent_locations
from kneo.spec.models import Spec
from kneo.spec.ref_rules import ref_rules
from kneo.spec.workflow_rules import workflow_rules


def extension_rules(spec: Spec, catalog: ToolCatalog, roots: list[Path]) -> list[Diagnostic]:
    """Skills, middleware, agent tools and workflow-backed agents of ``spec``."""
    out = _skill_rules(spec, catalog)
    out += _middleware_rules(spec, roots)
    out += _delegation_rules(spec)
    out += _nested_workflow_rules(spec, roots)
    return out


def _skill_rules(spec: Spec, catalog: ToolCatalog) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for agent, at in agent_locations(spec):
        for i, name in enumerate(agent.skills):
            if name not in spec.skills:
                out.append(
                    diag(
                        "E_UNKNOWN_SKILL",
                        f"{at}.skills[{i}]",
                        f"Skill '{name}' is declared neither by the spec nor by the project "
                        f"(declared: {', '.join(sorted(spec.skills)) or 'none'}).",
                        "declare it under skills: with its instructions and tools, in the spec "
                        "or in the project's .kneo/config.yaml",
                    )
                )
    for name, skill in spec.skills.items():
        for i, tool in enumerate(skill.tools):
            if tool not in catalog:
                out.append(
                    diag(
                        "E_UNKNOWN_TOOL",
                        f"skills.{name}.tools[{i}]",
                        f"Tool '{tool}' is not registered.",
                    )
                )
    return out


def _middleware_rules(spec: Spec, roots: list[Path]) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for agent, at in agent_locations(spec):
        for i, layer in enumerate(agent.middleware):
            function = getattr(layer, "function", None)
            if function is not None:
                out += ref_rules(f"{at}.middleware[{i}].function", function, roots)
    return out


def delegates(spec: Spec, agent_name: str) -> Iterator[str]:
    """The agents ``agent_name`` hands work to: those answering its agent tools, and the
    agents of the workflow backing it."""
    agent = spec.all_agents().get(agent_name)
    if agent is None:
        return
    for tool in agent.tool_names():
        comp = spec.components.tools.get(tool)
        if comp is not None and comp.agent is not None:
            yield comp.agent
    for skill in agent.skills:
        for tool in spec.skills[skill].tools if skill in spec.skills else []:
            comp = spec.components.tools.get(tool)
            if comp is not None and comp.agent is not None:
                yield comp.agent
    nested = spec.components.workflows.get(agent.workflow or "")
    if nested is not None:
        yield from (s.ref for s in nested.members() if s.kind == "agent")


def _delegation_rules(spec: Spec) -> list[Diagnostic]:
    """Agent tools and workflow-backed agents name declared things, and no agent reaches
    itself (``E_AGENT_CYCLE``: it would call itself without end)."""
    out: list[Diagnostic] = []
    agents = spec.all_agents()
    for name, comp in spec.components.tools.items():
        if comp.agent is not None and comp.agent not in agents:
            out.append(
                diag(
                    "E_UNKNOWN_REF",
                    f"components.tools.{name}.agent",
                    f"Agent '{comp.agent}' is not declared.",
                    "name the top-level agent or a components.agents key",
                )
            )
    for agent, at in agent_locations(spec):
        if agent.workflow is not None and agent.workflow not in spec.components.workflows:
            out.append(
                diag(
                    "E_UNKNOWN_REF",
                    f"{at}.workflow",
                    f"Workflow '{agent.workflow}' is not declared under components.workflows.",
                )
            )
        if _reaches_itself(spec, agent.name):
            out.append(
                diag(
                    "E_AGENT_CYCLE",
                    at,
                    f"Agent '{agent.name}' reaches itself through its agent tools or workflow.",
                    "break the loop: an agent may not, directly or not, hand work to itself",
                )
            )
    return out


def _reaches_itself(spec: Spec, start: str) -> bool:
    seen: set[str] = set()
    todo = list(delegates(spec, start))
    while todo:
        name = todo.pop()
        if name == start:
            return True
        if name not in seen:
            seen.add(name)
            todo += delegates(spec, name)
    return False


def _nested_workflow_rules(spec: Spec, roots: list[Path]) -> list[Diagnostic]:
    """Each ``components.workflows`` entry passes the workflow rules, its paths its own."""
    out: list[Diagnostic] = []
    for name, nested in spec.components.workflows.items():
        probe = spec.model_copy(update={"workflow": nested})
        for found in workflow_rules(probe, roots):
            path = f"components.workflows.{name}" + found.path.removeprefix("workflow")
            out.append(found.__class__(**{**found.to_dict(), "path": path}))
    return out
