"""``/v1/specs/*``: validate, compile, explain and policy-report a spec; ``/v1/specs/run``
lives with the runs routes because it is a run creation."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from kneo.platform import PlatformManager
from kneo.policy.check import SpecReport
from kneo.service.auth import Principal, require_scope
from kneo.service.dependencies import manager_dep
from kneo.service.schemas import SpecRequest, check_limits
from kneo.service.spec_source import check_resolved, registries, resolve_spec

router = APIRouter(tags=["specs"])


def _checked(
    request: Request, body: SpecRequest, manager: PlatformManager
) -> tuple[Any, SpecReport]:
    check_limits(body, request.app.state.settings.limits)
    resolved = resolve_spec(body, request.app.state.settings)
    return resolved, check_resolved(resolved, manager, manager.store)


def _audit(
    manager: PlatformManager, event: str, principal: Principal, resolved: Any, report: Any
) -> None:
    manager.store.add_audit(
        event,
        actor=principal.name,
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
    request: Request,
    body: SpecRequest,
    principal: Principal = Depends(require_scope("specs:read")),
    manager: PlatformManager = Depends(manager_dep),
) -> dict[str, Any]:
    """Diagnostics, environment policy and the governance report for a spec."""
    resolved, report = _checked(request, body, manager)
    _audit(manager, "spec.validated", principal, resolved, report)
    return report.to_dict()


@router.post("/specs/policy-report")
def spec_policy_report(
    request: Request,
    body: SpecRequest,
    principal: Principal = Depends(require_scope("specs:read")),
    manager: PlatformManager = Depends(manager_dep),
) -> dict[str, Any]:
    """The structured governance report (memory, tools, MCP, guardrails, human review)."""
    resolved, report = _checked(request, body, manager)
    manager.store.add_audit(
        "spec.policy_reported",
        actor=principal.name,
        payload={"source": "spec", "spec": resolved.source, "valid": report.valid},
    )
    return {
        "valid": report.valid,
        "report": report.report,
        "diagnostics": [d.to_dict() for d in report.diagnostics],
    }


def _compile(request: Request, body: SpecRequest, manager: PlatformManager) -> tuple[Any, Any, Any]:
    from kneo.spec.compiler import SpecCompiler, diagnostics_error

    resolved, report = _checked(request, body, manager)
    if not report.valid:
        raise diagnostics_error(report.diagnostics, source=resolved.source)
    tools, runtimes = registries(manager)
    compiler = SpecCompiler(runtime_registry=runtimes, tool_registry=tools)
    compiled = compiler.compile(
        resolved.spec,
        base_dir=resolved.base_dir,
        diagnostics=report.diagnostics,
        source=resolved.source,
    )
    return resolved, report, compiled


@router.post("/specs/compile")
def compile_spec(
    request: Request,
    body: SpecRequest,
    principal: Principal = Depends(require_scope("specs:read")),
    manager: PlatformManager = Depends(manager_dep),
) -> dict[str, Any]:
    """Compile a spec to its executable workflow (400 with diagnostics when invalid)."""
    from kneo.spec.compiler import describe

    resolved, report, compiled = _compile(request, body, manager)
    _audit(manager, "spec.compiled", principal, resolved, report)
    return {
        "compiled": True,
        "environment": report.environment,
        "workflow": describe(compiled),
        "diagnostics": [d.to_dict() for d in report.diagnostics],
    }


@router.post("/specs/explain")
def explain_spec(
    request: Request,
    body: SpecRequest,
    principal: Principal = Depends(require_scope("specs:read")),
    manager: PlatformManager = Depends(manager_dep),
) -> dict[str, Any]:
    """What would run, where people decide, and which gates apply, in one document."""
    from kneo.spec.compiler import describe

    resolved, report, compiled = _compile(request, body, manager)
    _audit(manager, "spec.explained", principal, resolved, report)
    summary = describe(compiled)
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
