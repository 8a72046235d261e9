"""``GET /v1/version``: what a client must know to talk to this service.

The API version its paths carry, Kneo's own version and the database schema's migration
revision (the newest this code knows and the one the database holds: a client, or an
operator, sees at once a service running ahead of or behind its database). Any caller with
a valid key may read it (``runs:read``, which every role holds).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool

from kneo.platform import PlatformManager
from kneo.service.auth import require_scope
from kneo.service.dependencies import manager_dep
from kneo.service.query_params import StrictQueryRoute
from kneo.store.migrate import HEAD_REVISION
from kneo.version import version_info

#: The version of the HTTP contract (the ``/v1`` of every documented path).
API_VERSION = "v1"

router = APIRouter(tags=["health"], route_class=StrictQueryRoute)


@router.get("/version", dependencies=[Depends(require_scope("runs:read"))])
async def service_version(manager: PlatformManager = Depends(manager_dep)) -> dict[str, Any]:
    """The API version, Kneo's version and the database schema revision (held and known)."""
    held = await run_in_threadpool(manager.store.schema_revision)
    installed = version_info()
    return {
        "api_version": API_VERSION,
        "kneo_version": installed.version,
        "version": installed.version,
        "revision": installed.revision,
        "schema_revision": held,
        "schema_head": HEAD_REVISION,
    }


__all__ = ["API_VERSION", "router"]
