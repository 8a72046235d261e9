"""Schedules declared by the project's active bundles: read, pause, resume, trigger.

Reading needs ``registry:read``; pausing and resuming change what the registry runs
(``controller:write``, like a suspend); a manual trigger starts a run as the caller
(``runs:write``), through the same admission and limits as any bundle run. Each acts in
the request's project only.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query

from kneo.platform import PlatformManager
from kneo.platform import schedule_ops as ops
from kneo.service.auth import Principal, require_scope
from kneo.service.dependencies import manager_dep
from kneo.service.query_params import StrictQueryRoute

router = APIRouter(tags=["schedules"], route_class=StrictQueryRoute)

_KEY = "/schedules/{bundle}/{environment}/{name}"


@router.get("/schedules", dependencies=[Depends(require_scope("registry:read"))])
def list_schedules(
    environment: str | None = Query(None, description="Only this environment's schedules."),
    manager: PlatformManager = Depends(manager_dep),
) -> dict[str, Any]:
    """Every schedule of the project's active revisions: definition, pause, last and next
    tick."""
    items = ops.list_schedules(manager, environment)
    return {"schedules": items, "count": len(items)}


@router.get(_KEY, dependencies=[Depends(require_scope("registry:read"))])
def get_schedule(
    bundle: str,
    environment: str,
    name: str,
    ticks: int = Query(20, ge=0, le=500, description="How many of the latest ticks to list."),
    manager: PlatformManager = Depends(manager_dep),
) -> dict[str, Any]:
    """One schedule with its latest ticks (each: its instant, status and run)."""
    return ops.get_schedule(manager, (bundle, environment, name), ticks=ticks)


@router.post(_KEY + "/pause")
def pause_schedule(
    bundle: str,
    environment: str,
    name: str,
    principal: Principal = Depends(require_scope("controller:write")),
    manager: PlatformManager = Depends(manager_dep),
) -> dict[str, Any]:
    """Hold the schedule's ticks until it is resumed (audited)."""
    return ops.set_paused(manager, (bundle, environment, name), True, actor=principal.name)


@router.post(_KEY + "/resume")
def resume_schedule(
    bundle: str,
    environment: str,
    name: str,
    principal: Principal = Depends(require_scope("controller:write")),
    manager: PlatformManager = Depends(manager_dep),
) -> dict[str, Any]:
    """Let the schedule tick again, counting from now (audited)."""
    return ops.set_paused(manager, (bundle, environment, name), False, actor=principal.name)


@router.post(_KEY + "/trigger", status_code=202)
def trigger_schedule(
    bundle: str,
    environment: str,
    name: str,
    principal: Principal = Depends(require_scope("runs:write")),
    manager: PlatformManager = Depends(manager_dep),
) -> dict[str, Any]:
    """Queue one run of the schedule now, as the caller; 202 with its run id."""
    return ops.trigger(manager, (bundle, environment, name), actor=principal.name)
