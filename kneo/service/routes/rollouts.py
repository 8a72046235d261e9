"""Rollouts: read where a progressive delivery stands, and decide it by hand.

``GET /v1/rollouts`` and ``GET /v1/rollouts/{rollout_id}`` take ``registry:read`` (as the
registry's reads); ``promote``, ``abort`` and ``retry`` take ``controller:write`` (as a
rollback or a pin), and then only the environment's approvers (and a pause step's own) may
decide: ``403 not_an_approver`` for anyone else
(:func:`kneo.controller.rollout_pass.decide`). Each acts in the request's project: another
project's rollout is ``404 not_found``.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Request

from kneo.names import check_name
from kneo.platform import PlatformManager, RolloutQuery
from kneo.service.auth import Principal, require_scope
from kneo.service.dependencies import manager_dep
from kneo.service.pagination import CURSOR, INCLUDE, keyset_params, list_cap
from kneo.service.query_params import StrictQueryRoute
from kneo.service.schemas import AbortRolloutRequest, PromoteRolloutRequest

router = APIRouter(route_class=StrictQueryRoute)

ROLLOUT_ID: Any = Path(..., min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")


@router.get("/rollouts", tags=["rollouts"], dependencies=[Depends(require_scope("registry:read"))])
def list_rollouts(
    request: Request,
    bundle: str | None = Query(None, description="Only this bundle's rollouts."),
    environment: str | None = Query(None, description="Only this environment's rollouts."),
    status: Literal["progressing", "paused", "promoted", "aborted", "superseded"] | None = Query(
        None, description="Only rollouts with this status."
    ),
    limit: int | None = Query(None, ge=1, description="Page size (capped)."),
    cursor: str | None = CURSOR,
    include: str | None = INCLUDE,
    manager: PlatformManager = Depends(manager_dep),
) -> dict[str, Any]:
    """The project's rollouts, newest first, by bundle, environment and status; paged by
    ``cursor``; ``total`` counted with ``include=counts``."""
    counts = keyset_params(request, 0, include)
    if bundle is not None:
        check_name(bundle, kind="bundle name", field="bundle")
    if environment is not None:
        check_name(environment, kind="environment")
    return manager.list_rollouts(
        RolloutQuery(
            bundle=bundle,
            environment=environment,
            status=status,
            limit=list_cap(request, limit),
            cursor=cursor or None,
            count=counts,
        )
    )


@router.get(
    "/rollouts/{rollout_id}",
    tags=["rollouts"],
    dependencies=[Depends(require_scope("registry:read"))],
)
def get_rollout(
    rollout_id: str = ROLLOUT_ID, manager: PlatformManager = Depends(manager_dep)
) -> dict[str, Any]:
    """One rollout: its steps and where it stands, why it last stopped, both sides' figures
    now, the last analysis' verdict and the figures' history."""
    return manager.get_rollout(rollout_id)


def _groups(principal: Principal) -> frozenset[str]:
    return frozenset(principal.identity().groups)


@router.post("/rollouts/{rollout_id}/promote", tags=["rollouts"])
def promote_rollout(
    rollout_id: str = ROLLOUT_ID,
    body: PromoteRolloutRequest | None = Body(None),
    principal: Principal = Depends(require_scope("controller:write")),
    manager: PlatformManager = Depends(manager_dep),
) -> dict[str, Any]:
    """Promote past the step the rollout stands at (a pause, an analysis still waiting);
    ``full``: to 100 % at once. The environment's approvers only."""
    full = body.full if body is not None else False
    return manager.decide_rollout(
        rollout_id, "promote", actor=principal.name, groups=_groups(principal), full=full
    )


@router.post("/rollouts/{rollout_id}/abort", tags=["rollouts"])
def abort_rollout(
    body: AbortRolloutRequest,
    rollout_id: str = ROLLOUT_ID,
    principal: Principal = Depends(require_scope("controller:write")),
    manager: PlatformManager = Depends(manager_dep),
) -> dict[str, Any]:
    """Abort: every new run takes the stable revision at once (runs under way keep theirs).
    The environment's approvers only; ``reason`` is required."""
    return manager.decide_rollout(
        rollout_id, "abort", actor=principal.name, groups=_groups(principal), reason=body.reason
    )


@router.post("/rollouts/{rollout_id}/retry", tags=["rollouts"])
def retry_rollout(
    rollout_id: str = ROLLOUT_ID,
    principal: Principal = Depends(require_scope("controller:write")),
    manager: PlatformManager = Depends(manager_dep),
) -> dict[str, Any]:
    """Start an aborted rollout again from its first step (its runs' figures are kept).
    The environment's approvers only."""
    return manager.decide_rollout(
        rollout_id, "retry", actor=principal.name, groups=_groups(principal)
    )
