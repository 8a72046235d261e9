"""``/v1/specs/*``: validate, compile, explain and policy-report a spec; ``/v1/specs/run``
lives with the runs routes because it is a run creation."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from kneo.platform import PlatformManager
from kneo.policy.check import SpecReport
from kneo.service.dependencies import Caller, caller_dep
from kneo.service.schemas import SpecRequest, check_limits
from kneo.service.spec_source import check_resolved, registries, resolve_spec

router = APIRouter(tags=["specs"])


def _checked(
    request: Request, body: SpecRequest, manager: PlatformManager
) -> tuple[Any, SpecReport]:
    check_limits(body, request.app.state.settings.limits)
    resolved = resolve_spec(body, request.app.state.settings)
    return resolved, check_resolved(resolved, manager)


def _audit(caller: Caller, event: str, resolved: Any, report: Any) -> None:
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
    return report.to_dict()


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
    return {
        "valid": report.valid,
        "report": report.report,
        "diagnostics": [d.to_dict() for d in report.diagnostics],
    }


def _compiled(
    request: Request, body: SpecRequest, caller: Caller, event: str
) -> tuple[SpecReport, dict[str, Any]]:
    """Check and compile the spec (400 with diagnostics when invalid), audit ``event``; the
    report and the compiled workflow's description."""
    from kneo.spec.compiler import SpecCompiler, describe, diagnostics_error

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
    return report, describe(compiled)


@router.post("/specs/compile")
def compile_spec(
    request: Request, body: SpecRequest, caller: Caller = Depends(caller_dep("specs:read"))
) -> dict[str, Any]:
    """Compile a spec to its executable workflow (400 with diagnostics when invalid)."""
    report, summary = _compiled(request, body, caller, "spec.compiled")
    return {
        "compiled": True,
        "environment": report.environment,
        "workflow": summary,
        "diagnostics": [d.to_dict() for d in report.diagnostics],
    }


@router.post("/specs/explain")
def explain_spec(
    request: Request, body: SpecRequest, caller: Caller = Depends(caller_dep("specs:read"))
) -> dict[str, Any]:
    """What would run, where people decide, and which gates apply, in one document."""
    report, summary = _compiled(request, body, caller, "spec.explained")
    steps = summary.get("steps", [])
    return {
        "valid": True,
        "environment": report.environment,
        "workflow": {
            "name": summary.get("name"),
            "family": summary.get("family"),
            "target": summary.get("target"),
            "step_count": len(steps),
            "steps": [
                {"id": s.get("id"), "kind": s.get("kind"), "ref": s.get("ref")} for s in steps
            ],
        },
        "human_approval": report.report.get("human_approval"),
        "policy": report.report.get("policy"),
        "report": report.report,
        "compiled": summary,
        "diagnostics": [d.to_dict() for d in report.diagnostics],
    }
