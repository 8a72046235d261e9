"""``GET /metrics``: the Prometheus exposition (:mod:`kneo.metrics`), behind ``metrics:read``.

Not under ``/v1``: scrapers expect ``/metrics``, and the format is Prometheus's, not ours. The
shared-state gauges are read from the database, so the handler is a plain ``def`` (it runs in
the threadpool, never on the event loop).

The page is platform-wide: every project's series, each labelled with its ``project``. So
``metrics:read`` is asked of the installation's own project (``default``: a Prometheus key
``prometheus:<key>:metrics:read``, an operator without ``@project``) or a platform
administrator, whatever project the request names: a team's operator (``operator@team-a``)
holds ``metrics:read`` in its project only, and would read the other teams' series.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from kneo import metrics
from kneo.projects import DEFAULT_PROJECT
from kneo.service.auth import Principal, missing_scope, require_scope
from kneo.service.dependencies import current_manager
from kneo.service.query_params import StrictQueryRoute

router = APIRouter(tags=["metrics"], route_class=StrictQueryRoute)
SCOPE = "metrics:read"
_signed_in_with_scope = require_scope(SCOPE)


async def require_platform_metrics(request: Request) -> Principal:
    """The caller, holding ``metrics:read`` in the default project (403 otherwise, naming
    it); a header naming another project changes nothing but that project's own check."""
    principal = await _signed_in_with_scope(request)
    if principal.project != DEFAULT_PROJECT:
        principal = principal.in_project(DEFAULT_PROJECT)
        if not principal.has(SCOPE):
            raise missing_scope(SCOPE, DEFAULT_PROJECT)
    request.state.project = DEFAULT_PROJECT
    return principal


require_platform_metrics.required_scope = SCOPE  # type: ignore[attr-defined]


@router.get("/metrics", include_in_schema=False, dependencies=[Depends(require_platform_metrics)])
def get_metrics(request: Request) -> Response:
    """This process's counters (each process is its own scrape target) and the
    shared-state gauges of every project, in the Prometheus text format."""
    app = request.app
    manager = current_manager(app)
    store = manager.store if manager is not None else None
    cached = getattr(app.state, "metrics_registry", None)
    if cached is None or cached[0] is not store:
        cached = (store, metrics.exposition_registry(store, app.state.settings))
        app.state.metrics_registry = cached
    body, content_type = metrics.render(cached[1])
    return Response(body, media_type=content_type)
