"""Environment policy enforcement: turn an environment's gates into ``E_POLICY_*`` errors.

Runs after overlays and project defaults are applied and after :func:`validate_spec`, so a
gate sees the spec that would actually run in that environment. The policy *model* lives
in the contract layer (:class:`kneo.spec.project_blocks.PolicyEnforcement`, part of the project
config); this module only evaluates it. Pure function.
"""

from __future__ import annotations

from kneo.spec.diagnostics import Diagnostic, diag
from kneo.spec.inventory import agent_locations, has_human_approval
from kneo.spec.models import AgentSpec, Spec
from kneo.spec.project_blocks import PolicyEnforcement

__all__ = ["PolicyEnforcement", "enforce"]


def enforce(
    spec: Spec, diagnostics: list[Diagnostic], policy: PolicyEnforcement | None
) -> list[Diagnostic]:
    """The ``E_POLICY_*`` errors ``policy`` adds for ``spec`` (empty when disabled or None).

    ``diagnostics`` are the validator's findings for the same spec; they are not modified.
    """
    if policy is None or not policy.enabled:
        return []
    out = _diagnostic_gates(diagnostics, policy)
    if policy.require_human_review and not has_human_approval(spec):
        out.append(
            diag(
                "E_POLICY_HUMAN_REVIEW_REQUIRED",
                "workflow" if spec.workflow is not None else "agent",
                "This environment requires human review, and the spec has no human step, "
                "review gate or tool-call approval.",
                "add a 'kind: human' step, a step 'human_review', or 'agent.approval_required'",
            )
        )
    for agent, at in agent_locations(spec):
        out += _agent_gates(agent, at, policy)
    return out


def _diagnostic_gates(diagnostics: list[Diagnostic], policy: PolicyEnforcement) -> list[Diagnostic]:
    """A finding whose code the environment blocks, or a warning where warnings fail."""
    out: list[Diagnostic] = []
    blocked = set(policy.blocked_diagnostic_codes)
    for d in diagnostics:
        if d.code in blocked:
            out.append(
                diag(
                    "E_POLICY_BLOCKED_CODE",
                    d.path,
                    f"{d.code} is blocked in this environment: {d.message}",
                    d.suggestion,
                )
            )
        elif policy.fail_on_warnings and d.severity == "warning":
            out.append(
                diag(
                    "E_POLICY_WARNING",
                    d.path,
                    f"Warnings fail this environment: {d.code}: {d.message}",
                    d.suggestion,
                )
            )
    return out


def _agent_gates(agent: AgentSpec, at: str, policy: PolicyEnforcement) -> list[Diagnostic]:
    """What the environment requires of one agent (at ``at``): tool permissions, no
    unrestricted tools, guardrails."""
    out: list[Diagnostic] = []
    has_tools = agent.tools_unrestricted or bool(agent.tool_names())
    if policy.require_tool_permissions and has_tools and agent.policies.tool is None:
        out.append(
            diag(
                "E_POLICY_TOOL_PERMISSIONS_REQUIRED",
                f"{at}.policies.tool",
                f"Agent '{agent.name}' has tools but no 'policies.tool'.",
                "declare policies.tool (allow, network, filesystem, shell, allowed_domains)",
            )
        )
    unrestricted = agent.tools_unrestricted or (
        agent.tools_shorthand and bool(agent.tool_names()) and agent.policies.tool is None
    )
    if policy.deny_unrestricted_tools and unrestricted:
        out.append(
            diag(
                "E_POLICY_UNRESTRICTED_TOOLS",
                f"{at}.tools",
                f"Agent '{agent.name}' selects tools without restriction.",
                "use 'tools: {include: [...]}' with 'policies.tool'",
            )
        )
    if policy.require_guardrails and not agent.has_guardrails:
        out.append(
            diag(
                "E_POLICY_GUARDRAILS_REQUIRED",
                f"{at}.guardrails",
                f"Agent '{agent.name}' declares no guardrails.",
                "add at least one guardrail (input, output or tool stage)",
            )
        )
    return out
