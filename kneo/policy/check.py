"""One check used by CLI, HTTP and controller alike: diagnostics + environment policy + report.

It sits in the trust layer because it composes the contract's diagnostics with the policy
that judges them (the contract layer never imports the policy).

``check_spec`` = :func:`validate_spec` on the resolved spec, then the environment's policy
(:func:`resolve_environment_policy`) adds ``E_POLICY_*`` errors, then a governance report is
built. ``valid`` is false when any error remains. Pure apart from locating refs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kneo.errors import KneoError
from kneo.kernel.code import materialize
from kneo.policy.access import LOOPBACK_ENVIRONMENT, HostAccess, Origin
from kneo.policy.enforcement import enforce
from kneo.policy.environment import BudgetsPolicy, ResourcesPolicy, resolve_for_context
from kneo.runtimes import RuntimeRegistry
from kneo.spec.diagnostics import Diagnostic, diag, has_errors
from kneo.spec.inventory import ToolCatalog, agent_locations, workflow_members
from kneo.spec.loader import LoadedSpec
from kneo.spec.models import AgentSpec, Spec
from kneo.spec.pinning import pinned_code
from kneo.spec.project import ProjectConfig, ProjectContext
from kneo.spec.project_blocks import PolicyEnforcement
from kneo.spec.refs import import_roots, project_root
from kneo.spec.validation import validate_spec
from kneo.tools import ToolRegistry


def resolve_environment_policy(context: ProjectContext, env: str) -> PolicyEnforcement | None:
    """The policy enforced in ``env`` (the project config's, made stricter by
    ``environments/<env>.yaml``), or None when nothing is configured for it: the one answer
    CLI, HTTP and controller give to "which gates apply in prod"."""
    return resolve_for_context(context, env).policy_enforcement


@dataclass(frozen=True)
class SpecReport:
    valid: bool
    diagnostics: list[Diagnostic]
    report: dict[str, Any]
    environment: str | None = None
    policy: PolicyEnforcement | None = None
    spec: Spec | None = field(default=None, repr=False, compare=False)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "warning"]

    def to_dict(self) -> dict[str, Any]:
        """The ``validate --json`` / ``POST /v1/specs/validate`` shape."""
        return {
            "valid": self.valid,
            "diagnostics": [d.to_dict() for d in self.diagnostics],
            "report": self.report,
        }


def _pinned_roots(
    spec: Spec, listed: list[Path], roots: list[Path] | None
) -> tuple[list[Path] | None, list[Diagnostic]]:
    """Where a signed spec's refs are checked: its pinned files first (verified against
    their digests: from this process's copies or the project root), then ``listed``."""
    code = pinned_code(spec)
    if code is None:
        return roots, []
    try:
        return [materialize(code, origin=project_root(listed)), *listed], []
    except KneoError as exc:
        return roots, [diag(exc.code, "code", exc.message, "sign the bundle again")]


def check_spec(
    loaded_or_spec: LoadedSpec | Spec,
    *,
    env: str | None = None,
    context: ProjectContext | None = None,
    tool_registry: ToolRegistry,
    runtime_registry: RuntimeRegistry,
    base_dir: Path | None = None,
    policy: PolicyEnforcement | None = None,
    probe: Callable[[Spec, HostAccess], list[Diagnostic]] | None = None,
    origin: Origin = "source",
    resources: ResourcesPolicy | None = None,
    access: HostAccess | None = None,
    roots: list[Path] | None = None,
) -> SpecReport:
    """Validate, confine to what the project allows, enforce the environment's policy, and
    report.

    The environment is ``env``, else the loaded spec's, else the context's. ``policy``
    overrides the resolved one (the service passes a policy stored in its database).
    ``origin`` says where the spec will run from (:data:`~kneo.policy.access.Origin`);
    ``resources`` overrides the environment file's ``resources:`` (the controller passes the
    watched repository's). ``probe`` adds diagnostics that need I/O (the CLI asks MCP
    servers for their tools), given the grant so it contacts only allowed servers; the
    environment's policy applies to them like to the others.

    ``access`` (the :func:`host_access` of the same arguments) and ``roots`` (as
    :func:`~kneo.spec.validation.validate_spec` takes them) are for a caller checking many
    specs under one grant, which computes them once (the controller, per environment).
    """
    if isinstance(loaded_or_spec, LoadedSpec):
        spec, base_dir = loaded_or_spec.spec, base_dir or loaded_or_spec.base_dir
        env = env or loaded_or_spec.env
    else:
        spec = loaded_or_spec
    if env is None and context is not None:
        env = context.env
    if base_dir is None and context is not None:
        base_dir = context.root  # an inline or bundle spec's refs resolve in the project
    resolved = resolve_for_context(context, env) if context is not None and env else None
    if policy is None and resolved is not None:
        policy = resolved.policy_enforcement
    if resources is None and resolved is not None:
        resources = resolved.resources
    if access is None:
        access = host_access(context, env, origin=origin, resources=resources)
    diagnostics = _spec_diagnostics(
        spec, access, tool_registry, runtime_registry, base_dir=base_dir, roots=roots
    )
    if probe is not None:
        diagnostics += probe(spec, access)
    enforced = enforce(spec, diagnostics, policy)
    all_diagnostics = [*enforced, *diagnostics]
    order = {"error": 0, "warning": 1, "info": 2}
    all_diagnostics.sort(key=lambda d: order[d.severity])
    report = policy_report(spec, tool_registry=tool_registry, env=env, policy=policy)
    return SpecReport(
        valid=not has_errors(all_diagnostics),
        diagnostics=all_diagnostics,
        report=report,
        environment=env,
        policy=policy,
        spec=spec,
    )


def _spec_diagnostics(
    spec: Spec,
    access: HostAccess,
    tool_registry: ToolRegistry,
    runtime_registry: RuntimeRegistry,
    *,
    base_dir: Path | None,
    roots: list[Path] | None,
) -> list[Diagnostic]:
    """What is wrong with ``spec`` under ``access``: what it may not reach first (a refused
    ref is refused, not "unresolved"), then pinned code that differs, then validation."""
    listed = import_roots(base_dir) if roots is None else roots
    diagnostics = access.check(spec, listed)
    roots, mismatch = _pinned_roots(spec, listed, roots)
    diagnostics += mismatch
    diagnostics += validate_spec(
        spec,
        tool_registry=tool_registry,
        runtime_registry=runtime_registry,
        base_dir=base_dir,
        roots=roots,
    )
    return diagnostics


def host_access(
    context: ProjectContext | None,
    env: str | None,
    *,
    origin: Origin,
    resources: ResourcesPolicy | None = None,
    budgets: BudgetsPolicy | None = None,
) -> HostAccess:
    """What specs of ``origin`` may reach (and spend) in ``env`` under the project of
    ``context`` (a project with no config file: the defaults; no environment: the
    project's default)."""
    config = context.config if context is not None else ProjectConfig()
    environment = env or (context.env if context is not None else LOOPBACK_ENVIRONMENT)
    return HostAccess.for_environment(
        config,
        environment,
        origin=origin,
        resources=resources,
        budgets=budgets,
    )


def policy_report(
    spec: Spec,
    *,
    tool_registry: ToolRegistry,
    env: str | None = None,
    policy: PolicyEnforcement | None = None,
) -> dict[str, Any]:
    """The governance summary reviewers read before signing or promoting a spec."""
    catalog = ToolCatalog(spec, tool_registry)
    agents = [_agent_report(agent, at, catalog) for agent, at in agent_locations(spec)]
    _, members = workflow_members(spec)
    human_steps = [s for s in members if s.kind == "human"]
    reviewers = [
        {
            "id": name,
            "assignee": h.assignee,
            "timeout_seconds": h.timeout_seconds,
            "on_timeout": h.on_timeout,
            "options": list(h.options),
        }
        for name, h in spec.components.humans.items()
    ]
    review_gates = [
        {
            "step": s.id,
            **s.human_review.model_dump(
                include={"requires_confirmation", "review_output", "assignee"}
            ),
        }
        for s in members
        if s.human_review is not None
    ]
    approval_tools = sorted(
        {t["name"] for a in agents for t in a["tools"] if t["requires_approval"]}
    )
    top = spec.agent
    return {
        "agent_name": top.name if top else None,
        "workflow_name": spec.workflow.name if spec.workflow else None,
        "workflow_kind": spec.workflow.family if spec.workflow else None,
        "memory": top.memory.model_dump() if top else None,
        "agents": agents,
        "tool_permissions": {a["name"]: a["tool_policy"] for a in agents},
        "mcp_imports": [imp.model_dump(exclude_none=True) for imp in spec.mcp.imports],
        "guardrail_stages": sorted({stage for a in agents for stage in a["guardrail_stages"]}),
        "human_reviewers": reviewers,
        "human_approval": {
            "human_steps": [s.id for s in human_steps],
            "review_gates": review_gates,
            "tools_requiring_approval": approval_tools,
            "present": bool(human_steps or review_gates or approval_tools),
        },
        "environment": env,
        "policy": policy.model_dump() if policy else None,
    }


def _agent_report(agent: AgentSpec, at: str, catalog: ToolCatalog) -> dict[str, Any]:
    """One agent in the governance summary: its model, tools and what they may do."""
    tools = []
    for name in catalog.selected(agent):
        d = catalog.get(name)
        tools.append(
            {
                "name": name,
                "capabilities": sorted(d.capabilities) if d else [],
                "requires_approval": bool(d and d.requires_approval)
                or name in agent.approval_required,
                "mcp_server": d.mcp_server if d else None,
            }
        )
    tp = agent.policies.tool
    return {
        "name": agent.name,
        "path": at,
        "model": {"provider": agent.model.provider, "name": agent.model.name},
        "strategy": agent.strategy.type,
        "runtime": agent.runtime_preferences.model_dump(),
        "memory": agent.memory.model_dump(),
        "tool_selection": "unrestricted"
        if agent.tools_unrestricted
        else ("shorthand" if agent.tools_shorthand else "explicit"),
        "tools": tools,
        "tool_policy": tp.model_dump() if tp else None,
        "guardrail_stages": sorted(
            {g.stage for g in agent.guardrails}
            | {m.stage for m in agent.middleware if m.type == "guardrail"}
        ),
        "guardrails": [{"name": g.name, "stage": g.stage, "type": g.type} for g in agent.guardrails]
        + [
            {"name": m.name, "stage": m.stage, "type": "middleware"}
            for m in agent.middleware
            if m.type == "guardrail"
        ],
    }
