"""Prometheus metrics: what each process did (counters, histograms) and the shared state
(gauges read from the database at scrape time). See ``docs/observability.md``.

Two kinds of values, two sources, one exposition:

- **What a process did** (runs finished, steps, human waits, reconciles, promotion
  decisions, notification deliveries, HTTP requests) is counted by the process that did it,
  with prometheus-client, and every exposition (``/metrics``, ``KNEO_SERV_METRICS_PORT``)
  reports **only its own process**: each process is one scrape target, and Prometheus sums
  across targets, as for any fleet. One shape, whatever else is set: the multiprocess mode
  of prometheus-client (``PROMETHEUS_MULTIPROC_DIR``) made every process sharing a
  directory report the sum of them all, so scraping each of them (which workers and
  controllers need anyway, for their probes) counted every run once per process. Not derived
  from the database: retention prunes runs and their events, a count of rows would then fall
  and Prometheus would read the fall as a counter reset (a false burst in ``rate()``), and a
  histogram would rescan every finished run per scrape.
- **Shared state** (pending human tasks, queue depth and lag, bundles) describes the whole
  installation, so it is read from the database when scraped (:mod:`kneo.store.maintenance.gauges`):
  every replica reports the same value (aggregate with ``max``, not ``sum``).

Both carry a ``project`` label (``default`` in a single-team install): the project a run,
step, model call, human wait, reconcile, promotion or notification belonged to, and the
project each gauge counts. Label names are fixed when the metrics are built; the label's
values are the installation's projects, so the series grow with their number, never with
requests. ``/metrics`` stays platform-wide (``metrics:read``): every project on one page.

Nothing is recorded until :func:`enable` (``kneo service serve``, ``kneo worker``,
``kneo controller run``): a one-shot ``kneo run local`` never imports prometheus-client
(~50 ms), and each ``record_*`` call is then a no-op costing one global read.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from kneo import __version__, tracing
from kneo.lifecycle import RunStatus
from kneo.logs import get_logger
from kneo.projects import DEFAULT_PROJECT
from kneo.version import version_info

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter, Histogram

    from kneo.settings import Settings

#: Run statuses that end a run (the label values of ``kneo_runs_total``).
FINAL_RUN_STATUSES = tuple(s.value for s in RunStatus if s.terminal)


class SharedGauges(Protocol):
    """One scrape's view of the shared state (:class:`kneo.store.maintenance.gauges.Gauges`),
    every project's: each key leads with the project's name."""

    @property
    def pending_tasks(self) -> Mapping[tuple[str, str, str], int]: ...
    @property
    def oldest_pending_seconds(self) -> Mapping[tuple[str, str, str], float]: ...
    @property
    def queue_depth(self) -> Mapping[str, int]: ...
    @property
    def queue_lag_seconds(self) -> Mapping[str, float]: ...
    @property
    def bundles(self) -> Mapping[tuple[str, str, str, str, str], int]: ...
    @property
    def pinned(self) -> Mapping[tuple[str, str], int]: ...
    @property
    def blocked_digests(self) -> Mapping[str, int]: ...
    @property
    def rollout_sides(self) -> Mapping[tuple[str, str, str, str, str], RolloutSide]: ...
    @property
    def rollout_weight(self) -> Mapping[tuple[str, str, str], int]: ...


class RolloutSide(Protocol):
    """What one side of a rollout adds up to (:class:`kneo.store.rollouts.SideFigures`)."""

    @property
    def runs(self) -> int: ...
    @property
    def finished(self) -> int: ...
    @property
    def failed(self) -> int: ...
    @property
    def decided(self) -> int: ...
    @property
    def rejected(self) -> int: ...
    @property
    def edited(self) -> int: ...
    @property
    def escalated(self) -> int: ...
    @property
    def p95_latency_ms(self) -> float | None: ...
    @property
    def cost(self) -> float: ...


class GaugeReads(Protocol):
    """The store's facet that reads the shared gauges (``store.maintenance``)."""

    def gauges(self) -> SharedGauges: ...


class GaugeSource(Protocol):
    """What the exposition reads from the store (this module sits below the store, so it
    names the part it uses instead of importing it): the gauges, and a readiness probe."""

    @property
    def maintenance(self) -> GaugeReads: ...
    def ping(self) -> None: ...


_RUN_BUCKETS = (0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 86400)
_WAIT_BUCKETS = (10, 60, 300, 900, 3600, 4 * 3600, 86400, 3 * 86400, 7 * 86400)
_RECONCILE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class _Metrics:
    """The per-process metric objects (built once, by :func:`enable`)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        #: this process's metrics (read directly unless multiprocess mode is on)
        self.registry = r = CollectorRegistry(auto_describe=True)
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}

        def counter(name: str, documentation: str, *labels: str) -> Counter:
            return Counter(name, documentation, labels, registry=r)

        def histogram(
            name: str,
            documentation: str,
            *labels: str,
            buckets: Sequence[float] = Histogram.DEFAULT_BUCKETS,
        ) -> Histogram:
            return Histogram(name, documentation, labels, buckets=buckets, registry=r)

        self._run_metrics(counter, histogram)
        self._operations_metrics(counter, histogram)
        self._service_metrics(counter, histogram)

    def _run_metrics(
        self, counter: Callable[..., Counter], histogram: Callable[..., Histogram]
    ) -> None:
        """What runs count: their ends and durations, steps, model tokens and cost, and how
        long human requests waited."""
        self.runs = counter(
            "kneo_runs", "Runs that reached a final status, by project.", "project", "status"
        )
        self.run_duration = histogram(
            "kneo_run_duration_seconds",
            "Seconds from a run's start to its final status (pauses included).",
            "project",
            buckets=_RUN_BUCKETS,
        )
        self.steps = counter(
            "kneo_steps", "Step executions by step kind and result.", "project", "kind", "status"
        )
        self.model_tokens = counter(
            "kneo_model_tokens",
            "Tokens of model calls by provider, model and direction (input or output).",
            "project",
            "provider",
            "model",
            "direction",
        )
        self.model_cost = counter(
            "kneo_model_cost",
            "Cost of priced model calls in the price table's currency, by provider and model.",
            "project",
            "provider",
            "model",
            "currency",
        )
        self.human_wait = histogram(
            "kneo_human_task_wait_seconds",
            "Seconds a human request waited for its decision.",
            "project",
            buckets=_WAIT_BUCKETS,
        )

    def _operations_metrics(
        self, counter: Callable[..., Counter], histogram: Callable[..., Histogram]
    ) -> None:
        """What the operators' machinery counts: controller reconciles, promotion decisions,
        notification deliveries."""
        self.reconciles = counter(
            "kneo_reconcile", "Controller reconciles by result.", "project", "result"
        )
        self.reconcile_duration = histogram(
            "kneo_reconcile_duration_seconds",
            "Seconds one controller reconcile took.",
            "project",
            buckets=_RECONCILE_BUCKETS,
        )
        self.promotions = counter(
            "kneo_promotions",
            "Promotion decisions that resolved a promotion task.",
            "project",
            "environment",
            "outcome",
        )
        self.notifications = counter(
            "kneo_notifications",
            "Notification delivery attempts by receiver and outcome.",
            "project",
            "receiver",
            "outcome",
        )

    def _service_metrics(
        self, counter: Callable[..., Counter], histogram: Callable[..., Histogram]
    ) -> None:
        """What the HTTP doors count: requests and refused sign-ins (no ``project``: a request
        is counted before its project is known)."""
        self.auth_failures = counter(
            "kneo_auth_failures",
            "Sign-ins refused: a wrong API key (invalid) or a client told to wait (throttled).",
            "surface",
            "outcome",
        )
        self.http_requests = counter(
            "kneo_http_requests",
            "HTTP requests by route template and status code.",
            "route",
            "status",
        )
        self.http_duration = histogram(
            "kneo_http_request_duration_seconds", "HTTP request latency by route template.", "route"
        )

    def child(self, metric: Any, *values: str) -> Any:
        """``metric.labels(*values)``, looked up in a dict after the first time: the
        client's own lookup (checks, a conversion, a lock) is ~8 calls, paid six times by
        every run request. As bounded as the client's children, which it keeps anyway."""
        key = (id(metric), values)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*values)
        return found


_metrics: _Metrics | None = None
_lock = threading.Lock()
#: The notification receivers this process delivers to, by project (:func:`declare_receivers`).
_receivers: set[tuple[str, str]] = set()
#: The outcomes of ``kneo_notifications_total``.
NOTIFICATION_OUTCOMES = ("sent", "failed", "dead")


def enable() -> None:
    """Start recording in this process (idempotent)."""
    global _metrics
    with _lock:
        if _metrics is None:
            from prometheus_client import disable_created_metrics

            disable_created_metrics()  # type: ignore[no-untyped-call]  # no ``*_created`` series: they double the output
            _metrics = _Metrics()
            _zero_notifications(_metrics, _receivers)


def declare_receivers(names: Iterable[str], *, project: str = DEFAULT_PROJECT) -> None:
    """Export ``kneo_notifications_total`` at 0 for each of ``project``'s receivers and each
    outcome before any delivery: a counter series that first appears at 1 has no increase
    Prometheus can see, so an alert on ``increase()`` would miss a receiver's first dead
    deliveries."""
    with _lock:
        _receivers.update((project, name) for name in names)
        if _metrics is not None:
            _zero_notifications(_metrics, _receivers)


def _zero_notifications(m: _Metrics, receivers: Iterable[tuple[str, str]]) -> None:
    for project, receiver in receivers:
        for outcome in NOTIFICATION_OUTCOMES:
            m.child(m.notifications, project, receiver, outcome)


def enabled() -> bool:
    return _metrics is not None


# Each ``record_*`` of what a run or a controller did takes the ``project`` it did it in (a
# store view's ``project``): the label's values are the installation's projects, so the
# series stay bounded by their number; ``default`` in a single-team install.


def record_run(
    status: str,
    started_at: datetime | None,
    finished_at: datetime | None,
    *,
    project: str = DEFAULT_PROJECT,
) -> None:
    """A run reached ``status`` (a final one, else nothing is counted); its duration is
    observed when it had started."""
    m = _metrics
    if m is None or status not in FINAL_RUN_STATUSES:
        return
    m.child(m.runs, project, status).inc()
    if started_at is not None and finished_at is not None:
        seconds = max(0.0, (finished_at - started_at).total_seconds())
        m.child(m.run_duration, project).observe(seconds)


def record_step(kind: str, status: str, *, project: str = DEFAULT_PROJECT) -> None:
    """A step execution ended: ``completed``, ``failed``, ``continued`` or ``skipped``."""
    m = _metrics
    if m is not None:
        m.child(m.steps, project, kind, status).inc()


def record_model_tokens(
    provider: str, model: str, usage: Mapping[str, Any], *, project: str = DEFAULT_PROJECT
) -> None:
    """One model call's ``input_tokens`` and ``output_tokens`` (those it reported)."""
    m = _metrics
    if m is None:
        return
    for direction in ("input", "output"):
        value = usage.get(f"{direction}_tokens")
        if isinstance(value, int) and value > 0:
            m.child(m.model_tokens, project, provider, model, direction).inc(value)


def record_model_cost(
    provider: str, model: str, cost: float, currency: str, *, project: str = DEFAULT_PROJECT
) -> None:
    """One priced model call's ``cost`` in ``currency`` (a call with no price adds nothing:
    its cost is unknown, not 0)."""
    m = _metrics
    if m is not None and cost > 0:
        m.child(m.model_cost, project, provider, model, currency).inc(cost)


def record_human_wait(seconds: float, *, project: str = DEFAULT_PROJECT) -> None:
    """A person decided a request that had waited ``seconds``."""
    m = _metrics
    if m is not None:
        m.child(m.human_wait, project).observe(max(0.0, seconds))


def record_reconcile(result: str, seconds: float, *, project: str = DEFAULT_PROJECT) -> None:
    """A controller reconcile ended: ``ok`` or ``error``."""
    m = _metrics
    if m is not None:
        m.child(m.reconciles, project, result).inc()
        m.child(m.reconcile_duration, project).observe(max(0.0, seconds))


def record_promotion(environment: str, outcome: str, *, project: str = DEFAULT_PROJECT) -> None:
    """A promotion task resolved: ``approved`` or ``rejected``."""
    m = _metrics
    if m is not None:
        m.child(m.promotions, project, environment, outcome).inc()


def record_notification(receiver: str, outcome: str, *, project: str = DEFAULT_PROJECT) -> None:
    """One delivery attempt to ``receiver`` ended: ``sent``, ``failed`` (will retry) or
    ``dead`` (gave up). For the notification deliverer to call after each attempt."""
    m = _metrics
    if m is not None:
        m.child(m.notifications, project, receiver, outcome).inc()


def record_auth_failure(surface: str, outcome: str) -> None:
    """A refused sign-in on the ``api``, the ``console`` or ``mcp``: ``invalid`` or
    ``throttled``."""
    if _metrics is not None:
        _metrics.child(_metrics.auth_failures, surface, outcome).inc()


def record_http(route: str, status: int, seconds: float) -> None:
    """One HTTP request; ``route`` is the route template (bounded), never the raw path."""
    m = _metrics
    if m is not None:
        m.child(m.http_requests, route, str(status)).inc()
        m.child(m.http_duration, route).observe(seconds)


#: ``/metrics``' series of each side of a moving rollout: name, what it counts, its value
ROLLOUT_SIDE_SERIES: tuple[tuple[str, str, Callable[[RolloutSide], float | None]], ...] = (
    ("kneo_rollout_runs", "Runs started since the rollout began", lambda f: f.runs),
    ("kneo_rollout_runs_finished", "Of them, runs finished", lambda f: f.finished),
    ("kneo_rollout_runs_failed", "Of them, runs failed", lambda f: f.failed),
    ("kneo_rollout_human_decisions", "Human requests of its runs decided", lambda f: f.decided),
    ("kneo_rollout_human_rejections", "Of them, rejected", lambda f: f.rejected),
    ("kneo_rollout_human_edits", "Of them, edited", lambda f: f.edited),
    ("kneo_rollout_human_escalations", "Human requests escalated", lambda f: f.escalated),
    (
        "kneo_rollout_p95_latency_seconds",
        "The p95 latency of finished runs",
        lambda f: None if f.p95_latency_ms is None else f.p95_latency_ms / 1000,
    ),
    ("kneo_rollout_cost", "What finished runs cost (the price table's currency)", lambda f: f.cost),
)


class StoreGauges:
    """A prometheus-client collector of the shared state, read when scraped: every
    project's, each series labelled with its ``project``."""

    def __init__(self, store: GaugeSource) -> None:
        self.store = store

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        g = self.store.maintenance.gauges()

        def family(name: str, documentation: str, labels: Sequence[str], values: Any) -> Any:
            found = GaugeMetricFamily(name, documentation, labels=["project", *labels])
            for key, n in sorted(values.items()):
                found.add_metric(list(key) if isinstance(key, tuple) else [key], n)
            return found

        yield family(
            "kneo_human_tasks_pending",
            "Pending human requests by project, kind and environment.",
            ["kind", "environment"],
            g.pending_tasks,
        )
        yield family(
            "kneo_human_task_oldest_pending_seconds",
            "Seconds the oldest pending human request has waited, by project, kind and "
            "environment.",
            ["kind", "environment"],
            g.oldest_pending_seconds,
        )
        yield family("kneo_queue_depth", "Runs waiting in the queue.", [], g.queue_depth)
        yield family(
            "kneo_queue_lag_seconds",
            "How long the oldest due queued run has waited to be claimed.",
            [],
            g.queue_lag_seconds,
        )
        yield family(
            "kneo_bundles",
            "Bundles by environment, latest revision status, Ready condition, and whether "
            "Git still has the bundle's file (in_git).",
            ["environment", "status", "ready", "in_git"],
            g.bundles,
        )
        yield family(
            "kneo_bundles_pinned",
            "Bundles pinned to a revision (kneo registry pin, or a rollback), by environment.",
            ["environment"],
            g.pinned,
        )
        yield family(
            "kneo_blocked_digests",
            "Spec digests blocked from promotion in every environment of the project.",
            [],
            g.blocked_digests,
        )
        yield family(
            "kneo_rollout_canary_weight",
            "The canary's share of new runs (percent) of each moving rollout.",
            ["bundle", "environment"],
            g.rollout_weight,
        )
        side = ["bundle", "environment", "track", "revision"]
        for name, documentation, figure in ROLLOUT_SIDE_SERIES:
            values = {key: figure(f) for key, f in g.rollout_sides.items()}
            yield family(
                name,
                f"{documentation}, by side (track: canary or stable) of each moving rollout.",
                side,
                {key: v for key, v in values.items() if v is not None},
            )


class BuildInfo:
    """``kneo_build_info{version,revision} 1``: which Kneo each scrape target runs (Prometheus's
    ``*_build_info`` convention; join on it, count versions during a rollout)."""

    def __init__(self, revision: str) -> None:
        self.revision = revision or "unknown"

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        info = GaugeMetricFamily(
            "kneo_build_info",
            "Kneo's version and source revision (as kneo version says it); always 1.",
            labels=["version", "revision"],
        )
        info.add_metric([__version__, self.revision], 1)
        yield info


def exposition_registry(store: GaugeSource | None, settings: Settings) -> CollectorRegistry:
    """What ``/metrics`` (or the metrics port) serves: this process's own metrics (never
    other processes', whatever ``PROMETHEUS_MULTIPROC_DIR`` says), plus the store's gauges."""
    from prometheus_client import CollectorRegistry

    enable()
    assert _metrics is not None
    registry = CollectorRegistry(auto_describe=False)
    # the image's build argument, else the checkout's or the build's commit (kneo.version)
    registry.register(BuildInfo(settings.build_revision or version_info().revision))
    registry.register(_metrics.registry)
    if store is not None:
        registry.register(StoreGauges(store))
    return registry


def render(registry: CollectorRegistry) -> tuple[bytes, str]:
    """``(body, content type)`` in the Prometheus text format."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return generate_latest(registry), CONTENT_TYPE_LATEST


def serve_port(
    store: GaugeSource, settings: Settings, *, alive: Callable[[], bool] | None = None
) -> Any:
    """With ``KNEO_SERV_METRICS_PORT`` set, serve the exposition unauthenticated on that port
    (``KNEO_SERV_METRICS_HOST``) in a daemon thread; returns the server (``None``: not set).

    The same port answers the probes of a process that serves no API (worker, controller):
    ``/livez`` is 200 while ``alive()`` (its loop runs), ``/readyz`` is 200 when it is alive
    and the database answers, 503 naming the failing check otherwise."""
    if settings.metrics_port is None:
        return None
    import json
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    from prometheus_client import make_wsgi_app

    exposition = make_wsgi_app(exposition_registry(store, settings))

    def checks(ready: bool) -> dict[str, str]:
        found = {"loop": "ok" if alive is None or alive() else "stopped"}
        if ready:
            try:
                store.ping()
                found["database"] = "ok"
            except Exception as exc:  # its name only: a message may carry a host
                found["database"] = type(exc).__name__
        return found

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path not in ("/livez", "/readyz"):
            return exposition(environ, start_response)  # type: ignore[no-any-return]
        found = checks(ready=path == "/readyz")
        ok = all(value == "ok" for value in found.values())
        body = json.dumps({"status": "ok" if ok else "not_ready", "checks": found}).encode()
        start_response(
            "200 OK" if ok else "503 Service Unavailable",
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
        )
        return [body]

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """Probes every few seconds: no access log."""

    server = make_server(
        settings.metrics_host, settings.metrics_port, app, Server, handler_class=Quiet
    )
    threading.Thread(target=server.serve_forever, name="kneo-metrics", daemon=True).start()
    return server


def start_process(
    store: GaugeSource, settings: Settings, *, alive: Callable[[], bool] | None = None
) -> Any:
    """A long-running process starts observing itself: metrics on, tracing per
    ``KNEO_SERV_OTEL_ENABLED``, the metrics port (with ``/livez`` and ``/readyz``, see
    :func:`serve_port`) when set (returned, ``None`` otherwise)."""
    enable()
    if settings.prometheus_multiproc_dir:
        get_logger("kneo_serv.metrics").warning(
            "PROMETHEUS_MULTIPROC_DIR is set: Kneo does not add up processes; this process "
            "reports only its own metrics, so scrape every process (docs/observability.md)"
        )
    tracing.configure(settings)
    return serve_port(store, settings, alive=alive)


__all__ = [
    "FINAL_RUN_STATUSES",
    "BuildInfo",
    "GaugeSource",
    "SharedGauges",
    "StoreGauges",
    "declare_receivers",
    "enable",
    "enabled",
    "exposition_registry",
    "record_http",
    "record_human_wait",
    "record_notification",
    "record_promotion",
    "record_reconcile",
    "record_run",
    "record_step",
    "render",
    "serve_port",
    "start_process",
]
