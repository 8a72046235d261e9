"""A spec explained for people: what runs in what order, which agents with which tools,
where the run waits for a person, and which policies judge it.

Pure: built from two documents the pipeline already makes, the compiled workflow's
description (:func:`kneo.spec.compiler.describe`) and the governance report
(:func:`kneo.policy.check.check_spec`'s ``report``), so ``kneo spec explain`` and
``POST /v1/specs/explain`` say the same thing and explain nothing the checks did not see.
:func:`explain` gives the structured answer, its ``lines`` the text the CLI prints.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kneo.spec.graph import describe_condition
from kneo.spec.models import EdgeSpec

_POLICY_GATES = {
    "fail_on_warnings": "warnings fail the spec",
    "require_human_review": "a person must review somewhere in the workflow",
    "require_tool_permissions": "every agent with tools needs a tool policy",
    "deny_unrestricted_tools": "tools that reach the network, files or a shell need limits",
    "require_guardrails": "every agent needs guardrails",
}


def _step_line(step: Mapping[str, Any]) -> str:
    kind = step.get("kind")
    if kind == "agent":
        tools = [t["name"] for t in step.get("tools") or []]
        with_tools = f" with tools {', '.join(tools)}" if tools else " (no tools)"
        return f"agent {step.get('agent')} on {step.get('model')}{with_tools}"
    if kind == "function":
        return f"function {step.get('function_ref') or step.get('ref')}"
    if kind == "workflow":
        return f"bundle {step.get('ref')} as a child run (waits for it; its output)"
    human = step.get("human") or {}
    decisions = ", ".join(human.get("decisions") or []) or "a decision"
    return f"a person decides ({decisions}): {human.get('prompt') or step.get('ref')}"


def _failure(step: Mapping[str, Any]) -> str | None:
    on_error, retries = step.get("on_error") or "fail", step.get("max_retries") or 0
    parts = []
    if retries:
        parts.append(f"retried up to {retries} time(s)")
    if on_error != "fail" or parts:
        parts.append({"fail": "then the run fails"}.get(on_error, f"then {on_error}"))
    if step.get("timeout_seconds"):
        parts.append(f"times out after {step['timeout_seconds']} s")
    return "; ".join(parts) or None


def _pauses(steps: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every place a run of this spec can wait for a person."""
    out: list[dict[str, Any]] = []
    for step in steps:
        human = step.get("human")
        if step.get("kind") == "human" and human:
            decisions = human.get("decisions") or []
            out.append(
                {
                    "step": step["id"],
                    "kind": "human_step",
                    "why": f"{step['ref']}: {human.get('prompt') or 'a decision'}",
                    "decisions": decisions,
                }
            )
        review = step.get("human_review")
        if review:
            what = "its output is reviewed" if review.get("review_output") else "it is confirmed"
            out.append(
                {
                    "step": step["id"],
                    "kind": "review_gate",
                    "why": f"{what}: {review.get('message') or 'before the run goes on'}",
                    "decisions": [],
                }
            )
        for tool in step.get("tools") or []:
            if tool.get("requires_approval"):
                out.append(
                    {
                        "step": step["id"],
                        "kind": "tool_approval",
                        "why": f"a call of tool {tool['name']} waits for approval",
                        "decisions": [],
                    }
                )
    return out


def _tools(steps: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each tool once, with the steps whose agents may call it."""
    found: dict[str, dict[str, Any]] = {}
    for step in steps:
        for tool in step.get("tools") or []:
            entry = found.setdefault(
                tool["name"],
                {
                    "name": tool["name"],
                    "capabilities": list(tool.get("capabilities") or []),
                    "requires_approval": bool(tool.get("requires_approval")),
                    "mcp_server": tool.get("mcp_server"),
                    "steps": [],
                },
            )
            entry["steps"].append(step["id"])
    return list(found.values())


def _routes(summary: Mapping[str, Any]) -> list[str]:
    """A graph's edges as sentences: ``review → finalize when contains "APPROVED"``."""
    out = []
    for data in summary.get("edges") or []:
        edge = EdgeSpec.model_validate(data)
        when = (
            f" when {describe_condition(edge.condition)}"
            if edge.condition is not None
            else " otherwise"
            if edge.default
            else ""
        )
        out.append(f"{edge.source} → {edge.target}{when}")
    return out


def _agents(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for agent in report.get("agents") or []:
        model = agent.get("model") or {}
        out.append(
            {
                "name": agent.get("name"),
                "model": f"{model.get('provider')}/{model.get('name')}",
                "tools": [t["name"] for t in agent.get("tools") or []],
                "tool_policy": agent.get("tool_policy"),
                "guardrails": list(agent.get("guardrail_stages") or []),
                "memory": (agent.get("memory") or {}).get("type"),
            }
        )
    return out


def _policies(report: Mapping[str, Any]) -> dict[str, Any]:
    """The environment's policy gates that are on, and what each asks."""
    policy = report.get("policy") or {}
    enabled = bool(policy.get("enabled"))
    gates = [
        {"gate": name, "means": means}
        for name, means in _POLICY_GATES.items()
        if enabled and policy.get(name)
    ]
    return {
        "environment": report.get("environment"),
        "enabled": enabled,
        "gates": gates,
        "blocked_diagnostic_codes": list(policy.get("blocked_diagnostic_codes") or [])
        if enabled
        else [],
    }


def _lines(explained: Mapping[str, Any]) -> list[str]:
    """The explanation as text, one line per fact."""
    wf = explained["workflow"]
    lines = [f"{wf['family']} workflow '{wf['name']}' (target {wf['target']}): {wf['order']}"]
    for n, step in enumerate(explained["steps"], 1):
        failure = f" [{step['on_failure']}]" if step["on_failure"] else ""
        lines.append(f"  {n}. {step['id']}: {step['does']}{failure}")
    lines += [f"  route {route}" for route in explained["routes"]]
    for pause in explained["pauses"]:
        lines.append(f"  pauses at {pause['step']} ({pause['kind']}): {pause['why']}")
    if not explained["pauses"]:
        lines.append("  never waits for a person")
    for agent in explained["agents"]:
        limits = agent["tool_policy"]
        reach = (
            "no tool policy"
            if limits is None
            else " ".join(
                f"{name}={'yes' if limits.get(name) else 'no'}"
                for name in ("network", "shell", "filesystem")
            )
        )
        guard = ", ".join(agent["guardrails"]) or "none"
        lines.append(f"  agent {agent['name']} ({agent['model']}): {reach}; guardrails {guard}")
    policy = explained["policies"]
    env = policy["environment"] or "no environment"
    if policy["enabled"]:
        gates = "; ".join(g["means"] for g in policy["gates"]) or "no gate on"
        lines.append(f"  policy of {env}: {gates}")
    else:
        lines.append(f"  policy of {env}: not enforced")
    return lines


def _order(summary: Mapping[str, Any], ids: list[str]) -> str:
    family = summary.get("family")
    if family == "graph":
        return f"starts at {summary.get('start') or (ids[0] if ids else '-')}, follows its edges"
    if family == "concurrent":
        return f"runs {', '.join(ids)} side by side on the same input"
    if family == "group-chat":
        return f"{' → '.join(ids)}, {summary.get('rounds') or 1} round(s)"
    if family == "handoff":
        selector = summary.get("selector") or {}
        order = selector.get("sequence") or ids
        return f"hands off {' → '.join(order)} ({selector.get('type') or 'sequence'})"
    return " → ".join(ids) or "no step"


def explain(summary: Mapping[str, Any], report: Mapping[str, Any]) -> dict[str, Any]:
    """Explain a compiled spec: ``summary`` is :func:`~kneo.spec.compiler.describe`'s
    answer, ``report`` the governance report of the same spec."""
    steps = list(summary.get("steps") or [])
    ids = [str(s["id"]) for s in steps]
    explained: dict[str, Any] = {
        "workflow": {
            "name": summary.get("name"),
            "family": summary.get("family"),
            "target": summary.get("target"),
            "order": _order(summary, ids),
            "step_count": len(steps),
        },
        "steps": [
            {"id": s["id"], "kind": s["kind"], "does": _step_line(s), "on_failure": _failure(s)}
            for s in steps
        ],
        "routes": _routes(summary),
        "agents": _agents(report),
        "tools": _tools(steps),
        "pauses": _pauses(steps),
        "policies": _policies(report),
    }
    explained["lines"] = _lines(explained)
    return explained


__all__ = ["explain"]
