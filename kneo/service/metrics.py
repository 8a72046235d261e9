"""``GET /metrics``: the Prometheus exposition (:mod:`kneo.metrics`), behind ``metrics:read``.

Not under ``/v1``: scrapers expect ``/metrics``, and the format is Prometheus's, not ours. The
shared-state gauges are read from the database, so the handler is a plain ``def`` (it runs in
the threadpool, never on the event loop).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from kneo import metrics
from kneo.service.auth import require_scope
from kneo.service.dependencies import current_manager
from kneo.service.query_params import StrictQueryRoute

router = APIRouter(tags=["metrics"], route_class=StrictQueryRoute)


@router.get(
    "/metrics",
    include_in_schema=False,
    dependencies=[Depends(require_scope("metrics:read"))],
)
def get_metrics(request: Request) -> Response:
    """This process's counters (each process is its own scrape target) and the
    shared-state gauges, in the Prometheus text format."""
    app = request.app
    manager = current_manager(app)
    store = manager.store if manager is not None else None
    cached = getattr(app.state, "metrics_registry", None)
    if cached is None or cached[0] is not store:
        cached = (store, metrics.exposition_registry(store, app.state.settings))
        app.state.metrics_registry = cached
    body, content_type = metrics.render(cached[1])
    return Response(body, media_type=content_type)
