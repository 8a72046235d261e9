"""All diagnostics of a validated :class:`~kneo.spec.models.Spec`: :func:`validate_spec`.

It runs the rule groups (:mod:`~kneo.spec.agent_rules`, :mod:`~kneo.spec.ref_rules`,
:mod:`~kneo.spec.workflow_rules`) and the spec-wide governance rules kept here (a privileged
tool or unsafe import with no person approving, components nothing uses). Rules are pure
functions of the spec and the registries, except that ``module:function`` refs are located
and parsed (never imported) to check they exist and are safe.
"""

from __future__ import annotations

from pathlib import Path

from kneo.runtimes import RuntimeRegistry
from kneo.spec.agent_rules import agent_rules
from kneo.spec.diagnostics import Diagnostic, diag
from kneo.spec.extension_rules import delegates, extension_rules
from kneo.spec.inventory import ToolCatalog, agent_locations, has_human_step, workflow_members
from kneo.spec.models import Spec
from kneo.spec.ref_rules import function_component_rules, selected_tool_safety, tool_component_rules
from kneo.spec.refs import import_roots, refresh_import_caches
from kneo.spec.workflow_rules import workflow_rules
from kneo.tools import ToolRegistry


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
    out += agent_rules(spec, catalog, runtime_registry)
    out += tool_component_rules(spec, roots)
    out += selected_tool_safety(spec, catalog, roots)
    out += workflow_rules(spec, roots)
    out += function_component_rules(spec, roots)
    out += extension_rules(spec, catalog, roots)
    out += _approval_rule(spec, catalog, out)
    out += _unused_rules(spec)
    order = {"error": 0, "warning": 1, "info": 2}
    return sorted(_dedupe(out), key=lambda d: order[d.severity])


def _dedupe(items: list[Diagnostic]) -> list[Diagnostic]:
    return list(dict.fromkeys(items))


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
    if not (privileged or unsafe) or has_human_step(spec):
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


def _unused_rules(spec: Spec) -> list[Diagnostic]:
    if spec.workflow is None:
        return []
    _, members = workflow_members(spec)
    refs = {s.ref for s in members}
    refs |= {d for agent in spec.all_agents() for d in delegates(spec, agent)}
    refs |= {s.ref for nested in spec.components.workflows.values() for s in nested.members()}
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
