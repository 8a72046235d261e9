"""``/v1/specs/*``: validate, compile, explain and policy-report a spec; ``/v1/specs/run``
lives with the runs routes because it is a run creation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Request

from kneo.platform import PlatformManager
from kneo.policy.check import SpecReport
from kneo.service.dependencies import Caller, caller_dep
from kneo.service.errors import relative_paths
from kneo.service.query_params import StrictQueryRoute
from kneo.service.schemas import CompileRequest, SpecRequest, check_limits
from kneo.service.spec_source import check_resolved, registries, resolve_spec
from kneo.spec.compiler import SpecCompiler, describe, diagnostics_error
from kneo.spec.explain import explain
from kneo.spec.graph import workflow_graph

if TYPE_CHECKING:
    from kneo.policy.check import SpecReport
    from kneo.service.spec_source import ResolvedSpec

router = APIRouter(tags=["specs"], route_class=StrictQueryRoute)


def _checked(
    request: Request, body: SpecRequest, manager: PlatformManager
) -> tuple[Any, SpecReport]:
    check_limits(body, request.app.state.settings.limits)
    resolved = resolve_spec(body, request.app.state.settings)
    return resolved, check_resolved(resolved, manager)


def _audit(caller: Caller, event: str, resolved: ResolvedSpec, report: SpecReport) -> None:
    caller.manager.add_audit(
        event,
        actor=caller.principal.name,
        payload={
            "source": resolved.source,
            "environment": report.environment,
            "valid": report.valid,
            "error_count": len(report.errors),
            "warning_count": len(report.warnings),
        },
    )


@router.post("/specs/validate")
def validate_spec(
    request: Request, body: SpecRequest, caller: Caller = Depends(caller_dep("specs:read"))
) -> dict[str, Any]:
    """Diagnostics, environment policy and the governance report for a spec."""
    resolved, report = _checked(request, body, caller.manager)
    _audit(caller, "spec.validated", resolved, report)
    return relative_paths(request, report.to_dict())


@router.post("/specs/policy-report")
def spec_policy_report(
    request: Request, body: SpecRequest, caller: Caller = Depends(caller_dep("specs:read"))
) -> dict[str, Any]:
    """The structured governance report (memory, tools, MCP, guardrails, human review)."""
    resolved, report = _checked(request, body, caller.manager)
    caller.manager.add_audit(
        "spec.policy_reported",
        actor=caller.principal.name,
        payload={"source": "spec", "spec": resolved.source, "valid": report.valid},
    )
    return relative_paths(
        request,
        {
            "valid": report.valid,
            "report": report.report,
            "diagnostics": [d.to_dict() for d in report.diagnostics],
        },
    )


def _compiled(
    request: Request, body: SpecRequest, caller: Caller, event: str
) -> tuple[SpecReport, dict[str, Any]]:
    """Check and compile the spec (400 with diagnostics when invalid), audit ``event``; the
    report and the compiled workflow's description."""
    report, compiled = _compile(request, body, caller, event)

    return report, describe(compiled)


def _compile(
    request: Request, body: SpecRequest, caller: Caller, event: str
) -> tuple[SpecReport, Any]:
    """Check and compile the spec (400 with diagnostics when invalid), audit ``event``; the
    report and the compiled workflow."""
    resolved, report = _checked(request, body, caller.manager)
    if not report.valid:
        raise diagnostics_error(report.diagnostics, source=resolved.source)
    tools, runtimes = registries(caller.manager)
    compiler = SpecCompiler(runtime_registry=runtimes, tool_registry=tools)
    compiled = compiler.compile(
        resolved.spec,
        base_dir=resolved.base_dir,
        diagnostics=report.diagnostics,
        source=resolved.source,
    )
    _audit(caller, event, resolved, report)
    return report, compiled


@router.post("/specs/compile")
def compile_spec(
    request: Request, body: CompileRequest, caller: Caller = Depends(caller_dep("specs:read"))
) -> dict[str, Any]:
    """Compile a spec to its executable workflow: 400 with diagnostics when invalid, or
    with ``strict: false`` 200 with ``ok: false`` and the diagnostics."""
    if not body.strict:
        resolved, checked = _checked(request, body, caller.manager)
        if not checked.valid:
            _audit(caller, "spec.compiled", resolved, checked)
            return relative_paths(
                request,
                {
                    "ok": False,
                    "compiled": False,
                    "environment": checked.environment,
                    "workflow": None,
                    "diagnostics": [d.to_dict() for d in checked.diagnostics],
                },
            )
    report, summary = _compiled(request, body, caller, "spec.compiled")
    return relative_paths(
        request,
        {
            "ok": True,
            "compiled": True,
            "environment": report.environment,
            "workflow": summary,
            "diagnostics": [d.to_dict() for d in report.diagnostics],
        },
    )


@router.post("/specs/explain")
def explain_spec(
    request: Request, body: SpecRequest, caller: Caller = Depends(caller_dep("specs:read"))
) -> dict[str, Any]:
    """What would run, where people decide, and which gates apply, in one document:
    ``explanation`` (:func:`kneo.spec.explain.explain`) says it for people, as
    ``kneo spec explain`` prints it."""
    report, summary = _compiled(request, body, caller, "spec.explained")
    steps = summary.get("steps", [])
    shown = [{"id": s.get("id"), "kind": s.get("kind"), "ref": s.get("ref")} for s in steps]
    workflow: dict[str, Any] = {
        "name": summary.get("name"),
        "family": summary.get("family"),
        "target": summary.get("target"),
        "step_count": len(steps),
        "steps": shown,
    }
    return relative_paths(
        request,
        {
            "valid": True,
            "environment": report.environment,
            "workflow": workflow,
            # the explanation at a glance (what the original's clients show first)
            "summary": {
                **{k: workflow[k] for k in ("name", "family", "target", "step_count")},
                "human_steps": [s["id"] for s in shown if s["kind"] == "human"],
                "warnings": len(report.warnings),
            },
            "explanation": explain(summary, report.report),
            "human_approval": report.report.get("human_approval"),
            "policy": report.report.get("policy"),
            "report": report.report,
            "compiled": summary,
            "diagnostics": [d.to_dict() for d in report.diagnostics],
        },
    )


@router.post("/specs/graph")
def graph_spec(
    request: Request, body: SpecRequest, caller: Caller = Depends(caller_dep("specs:read"))
) -> dict[str, Any]:
    """The spec's workflow as nodes and edges (:mod:`kneo.spec.graph`), checked and compiled
    like ``compile`` (400 with diagnostics when invalid); every node ``pending``."""
    report, compiled = _compile(request, body, caller, "spec.graphed")
    return {"environment": report.environment, **workflow_graph(compiled).to_dict()}
