"""Compile a validated spec into the :class:`CompiledWorkflow` the engine runs.

Compiling resolves every reference once (agents to their specs, tools to definitions,
functions to checked ``module:function`` refs, humans to their components) and refuses to
produce anything while a diagnostic error remains, so the engine never meets a dangling
name. No user code is imported here; refs are located and parsed only.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from kneo.errors import ErrorCode, SpecError
from kneo.kernel.code import CodeSet, collect_code, materialize
from kneo.runtimes import RuntimeRegistry
from kneo.spec.compiled import CompiledStep, CompiledWorkflow, Family
from kneo.spec.diagnostics import Diagnostic, has_errors
from kneo.spec.inventory import ToolCatalog, function_refs
from kneo.spec.models import AgentSpec, SelectorSpec, Spec, StepSpec, WorkflowSpec
from kneo.spec.pinning import pinned_code
from kneo.spec.refs import import_roots, modules_of, project_root
from kneo.spec.validation import validate_spec
from kneo.tools import ToolDefinition, ToolRegistry

Target = Literal["workflow", "agent"]


def normalize_agent(agent: AgentSpec) -> AgentSpec:
    """Fold deprecated v0 fields into their v1 places so the engine reads one shape."""
    update: dict[str, Any] = {}
    if agent.instructions is not None and not agent.system_prompt:
        update["system_prompt"] = agent.instructions
    if agent.max_iterations is not None and "max_iterations" not in agent.strategy.model_fields_set:
        update["strategy"] = agent.strategy.model_copy(
            update={"max_iterations": agent.max_iterations}
        )
    return agent.model_copy(update=update) if update else agent


def with_skills(agent: AgentSpec, spec: Spec) -> AgentSpec:
    """The agent with its skills' instructions after its own system prompt, each under its
    skill's name (their tools join through :meth:`ToolCatalog.selected`)."""
    parts = [agent.system_prompt] if agent.system_prompt else []
    for name in agent.skills:
        skill = spec.skills.get(name)
        if skill is not None:
            parts.append(f"## Skill: {name}\n{skill.instructions.strip()}")
    if len(parts) <= (1 if agent.system_prompt else 0):
        return agent
    return agent.model_copy(update={"system_prompt": "\n\n".join(parts)})


def diagnostics_error(diagnostics: list[Diagnostic], *, source: str | None = None) -> SpecError:
    """One :class:`SpecError` for a list of diagnostics: first error in the message, all attached."""
    errors = [d for d in diagnostics if d.is_error]
    first = errors[0]
    more = f" (+{len(errors) - 1} more errors)" if len(errors) > 1 else ""
    prefix = f"{source}: " if source else ""
    return SpecError(
        f"{prefix}{first.path}: {first.message}{more}",
        code=first.code,
        path=first.path,
        file=source,
        diagnostics=[d.to_dict() for d in diagnostics],
    )


class SpecCompiler:
    """Validates and compiles specs against one tool registry and one runtime registry."""

    def __init__(self, *, runtime_registry: RuntimeRegistry, tool_registry: ToolRegistry) -> None:
        self.runtime_registry = runtime_registry
        self.tool_registry = tool_registry

    def validate(
        self, spec: Spec, *, base_dir: Path | None = None, code: CodeSet | None = None
    ) -> list[Diagnostic]:
        """The spec's diagnostics; with ``code`` (a pinned run's, a bundle's), its refs are
        checked against the pinned files, wherever the project's files are now."""
        roots = None
        if code:
            listed = import_roots(base_dir)
            roots = [materialize(code, origin=project_root(listed)), *listed]
        return validate_spec(
            spec,
            tool_registry=self.tool_registry,
            runtime_registry=self.runtime_registry,
            base_dir=base_dir,
            roots=roots,
        )

    def compile(
        self,
        spec: Spec,
        *,
        target: Target = "workflow",
        base_dir: Path | None = None,
        diagnostics: list[Diagnostic] | None = None,
        source: str | None = None,
        code: CodeSet | None = None,
    ) -> CompiledWorkflow:
        """Compile ``spec``; raises :class:`SpecError` (all diagnostics attached) on errors.

        ``target="agent"`` (or a spec without a workflow) runs the top-level agent as a
        one-step sequential workflow. Pass ``diagnostics`` when already computed (for
        example with environment policy errors added) to skip validating twice.

        ``code``: the project code the run is pinned to (a run's record, a signed bundle's
        ``code``); by default the files the spec's refs reach now, hashed (nothing runs).
        """
        if code is None and spec.code is not None:  # a signed spec: the code it pins
            code = pinned_code(spec)
        if target not in ("workflow", "agent"):
            raise SpecError(
                f"unknown target {target!r}; use 'workflow' or 'agent'",
                code=ErrorCode.E_SCHEMA,
                path="target",
            )
        found = (
            self.validate(spec, base_dir=base_dir, code=code)
            if diagnostics is None
            else diagnostics
        )
        if has_errors(found):
            raise diagnostics_error(found, source=source)
        catalog = ToolCatalog(spec, self.tool_registry)
        roots = import_roots(base_dir)
        root = project_root(roots) if base_dir is not None else None
        if code is None:
            refs = (ref for _path, ref in function_refs(spec))
            code = collect_code(modules_of(refs), roots, project_root=root)[0]
        metadata: dict[str, object] = {"base_dir": str(base_dir) if base_dir else None}
        code_root = root or (roots[-1] if roots else None)
        if target == "agent" or spec.workflow is None:
            if spec.agent is None:
                raise SpecError(
                    "target 'agent' needs a top-level 'agent'",
                    code=ErrorCode.E_UNKNOWN_REF,
                    path="agent",
                )
            step = self._step(
                StepSpec(id=spec.agent.name, kind="agent", ref=spec.agent.name), spec, catalog
            )
            return CompiledWorkflow(
                family="sequential",
                name=spec.agent.name,
                steps=(step,),
                spec=spec,
                target="agent",
                metadata=metadata,
                code=code,
                code_root=code_root,
            )
        workflow = self._workflow(spec.workflow, spec, catalog, metadata)
        return replace(workflow, code=code, code_root=code_root)

    def _workflow(
        self, wf: WorkflowSpec, spec: Spec, catalog: ToolCatalog, metadata: dict[str, object]
    ) -> CompiledWorkflow:
        family: Family = wf.family  # type: ignore[assignment]
        steps = tuple(self._step(s, spec, catalog) for s in wf.members())
        selector = wf.selector
        if family == "handoff":
            if selector is None:
                selector = SelectorSpec(type="sequence", sequence=[s.id for s in steps])
            elif selector.type == "sequence" and not selector.sequence:
                selector = selector.model_copy(update={"sequence": [s.id for s in steps]})
        return CompiledWorkflow(
            family=family,
            name=wf.name,
            steps=steps,
            spec=spec,
            edges=tuple(wf.edges),
            start=wf.start,
            max_visits=wf.max_visits,
            selector=selector,
            rounds=wf.rounds,
            target="workflow",
            metadata=metadata,
        )

    # ------------------------------------------------------------------ steps

    def _step(self, step: StepSpec, spec: Spec, catalog: ToolCatalog) -> CompiledStep:
        common: dict[str, Any] = {
            "id": step.id,
            "kind": step.kind,
            "ref": step.ref,
            "on_error": step.on_error,
            "max_retries": step.max_retries,
            "retry_backoff_seconds": step.retry_backoff_seconds,
            "timeout_seconds": step.timeout_seconds,
            "human_review": step.human_review,
        }
        if step.kind == "agent":
            agent = with_skills(normalize_agent(spec.all_agents()[step.ref]), spec)
            tools = self._agent_tools(agent, catalog)
            delegates = tuple(
                (t.name, self._step(StepSpec(id=step.id, kind="agent", ref=t.agent), spec, catalog))
                for t in tools
                if t.agent is not None
            )
            nested = spec.components.workflows.get(agent.workflow or "")
            workflow = self._workflow(nested, spec, catalog, {}) if nested else None
            return CompiledStep(
                **common, agent=agent, tools=tools, delegates=delegates, workflow=workflow
            )
        if step.kind == "human":
            return CompiledStep(**common, human=spec.components.humans[step.ref])
        if step.kind == "workflow":  # a bundle's name: resolved when the step runs
            return CompiledStep(**common)
        function = spec.components.functions.get(step.ref)
        return CompiledStep(**common, function_ref=function.ref if function else step.ref)

    def _agent_tools(self, agent: AgentSpec, catalog: ToolCatalog) -> tuple[ToolDefinition, ...]:
        """The agent's tools, each needing approval when the agent's ``approval_required``
        names it even if its definition does not."""
        tools: list[ToolDefinition] = []
        for name in catalog.selected(agent):
            definition = catalog.get(name)
            if definition is not None:
                if name in agent.approval_required and not definition.requires_approval:
                    definition = replace(definition, requires_approval=True)
                tools.append(definition)
        return tuple(tools)


def describe(compiled: CompiledWorkflow) -> dict[str, Any]:
    """A JSON-friendly summary of a compiled workflow (``kneo spec compile --json``)."""
    return {
        "target": compiled.target,
        "family": compiled.family,
        "name": compiled.name,
        "start": compiled.start,
        "rounds": compiled.rounds,
        "max_visits": compiled.max_visits,
        "selector": compiled.selector.model_dump() if compiled.selector else None,
        "steps": [
            {
                "id": s.id,
                "kind": s.kind,
                "ref": s.ref,
                "on_error": s.on_error,
                "max_retries": s.max_retries,
                "timeout_seconds": s.timeout_seconds,
                "agent": s.agent.name if s.agent else None,
                "model": f"{s.agent.model.provider}/{s.agent.model.name}" if s.agent else None,
                "runtime": s.agent.runtime_preferences.preferred_mode if s.agent else None,
                "tools": [
                    {
                        "name": t.name,
                        "capabilities": sorted(t.capabilities),
                        "requires_approval": t.requires_approval,
                        "mcp_server": t.mcp_server,
                    }
                    for t in s.tools
                ],
                "skills": list(s.agent.skills) if s.agent else [],
                "middleware": [m.type for m in s.agent.middleware] if s.agent else [],
                "agent_tools": {tool: d.ref for tool, d in s.delegates},
                "backed_by": s.agent.workflow if s.agent else None,
                "function_ref": s.function_ref,
                "human": s.human.model_dump(exclude_none=True) if s.human else None,
                "human_review": s.human_review.model_dump(exclude_none=True)
                if s.human_review
                else None,
            }
            for s in compiled.steps
        ],
        "edges": [
            e.model_dump(by_alias=True, exclude_none=True, exclude_defaults=True)
            for e in compiled.edges
        ],
    }
