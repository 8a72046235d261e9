"""``/v1/notifications`` (scope ``notifications:admin``): the delivery rows, pending, sent
and dead, and retrying them (docs/notifications.md)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from kneo.platform import NotificationQuery, PlatformManager
from kneo.service.auth import Principal, require_scope
from kneo.service.dependencies import manager_dep
from kneo.service.pagination import OFFSET, list_cap
from kneo.service.query_params import StrictQueryRoute

router = APIRouter(tags=["notifications"], route_class=StrictQueryRoute)
SCOPE = "notifications:admin"


class RetryRequest(BaseModel):
    """Which deliveries to make due again: ``ids``, else every row in ``status``."""

    model_config = ConfigDict(extra="forbid")

    #: row ids are 64-bit: a larger one names no row, and a driver would refuse it
    ids: list[Annotated[int, Field(ge=1, le=2**63 - 1)]] | None = Field(
        default=None, max_length=1000
    )
    status: Literal["dead", "pending"] = "dead"


@router.get("/notifications", dependencies=[Depends(require_scope(SCOPE))])
def list_notifications(
    request: Request,
    status: Literal["pending", "sending", "sent", "dead"] | None = None,
    receiver: str | None = Query(None, max_length=128),
    event_type: str | None = Query(None, max_length=64),
    limit: int | None = Query(None, ge=1),
    offset: int = OFFSET,
    manager: PlatformManager = Depends(manager_dep),
) -> dict[str, Any]:
    """Deliveries newest first, with counts per status (pending, sending, sent, dead)."""
    return manager.list_notifications(
        NotificationQuery(
            status=status,
            receiver=receiver,
            event_type=event_type,
            limit=list_cap(request, limit),
            offset=offset,
        )
    )


@router.post("/notifications/retry")
def retry_notifications(
    body: RetryRequest,
    principal: Principal = Depends(require_scope(SCOPE)),
    manager: PlatformManager = Depends(manager_dep),
) -> dict[str, Any]:
    """Make deliveries due now with a fresh attempt budget (``dead`` ones by default)."""
    retried = manager.retry_notifications(body.ids, status=body.status, actor=principal.name)
    return {"retried": retried}
