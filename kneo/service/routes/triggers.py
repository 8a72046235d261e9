"""``POST /v1/triggers/{bundle}/{environment}/{name}``: an event for a trigger a bundle's
active revision declares (:mod:`kneo.platform.triggers`).

Signed by the sender with the trigger's secret, not an API key: any replica verifies the
signature over the raw body, and the event's id makes a retried delivery start no second
run. Another project's trigger is its path form, ``/v1/projects/<name>/triggers/...``.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from kneo.platform import PlatformManager
from kneo.platform.triggers import MAX_BODY_BYTES, Delivery, deliver
from kneo.service.query_params import StrictQueryRoute
from kneo.service.routes.controller import webhook_manager

router = APIRouter(tags=["triggers"], route_class=StrictQueryRoute)


@router.post("/triggers/{bundle}/{environment}/{name}", status_code=202)
async def trigger_event(
    bundle: str,
    environment: str,
    name: str,
    request: Request,
    manager: PlatformManager = Depends(webhook_manager),
) -> JSONResponse:
    """Start the bundle's run for this event: 202 ``started`` with its run id, 200
    ``duplicate`` (this event already started one) or ``filtered`` (the trigger's filter
    drops it); 401 when the signature does not verify."""
    from starlette.concurrency import run_in_threadpool

    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        body = body[: MAX_BODY_BYTES + 1]
    delivery = Delivery({k.lower(): v for k, v in request.headers.items()}, body)
    status, answer = await run_in_threadpool(
        deliver, manager, (bundle, environment, name), delivery
    )
    return JSONResponse(answer, status_code=status)
