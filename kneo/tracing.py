"""OpenTelemetry spans, on with ``KNEO_SERV_OTEL_ENABLED=true`` (``docs/observability.md``).

Off by default and then free: nothing imports OpenTelemetry, :func:`tracer` is ``None`` and
every caller checks that one global before doing anything. On, :func:`configure` installs an
SDK tracer provider whose exporter the standard variables choose (``OTEL_TRACES_EXPORTER``:
``otlp`` — OTLP over HTTP, ``OTEL_EXPORTER_OTLP_*`` — ``console`` or ``none``;
``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``), unless the process already has one
(``opentelemetry-instrument``, a test's in-memory exporter): then Kneo's spans go there.

Every string attribute passes through the redaction policy (:func:`attributes`); tool
arguments and results reach a span only when ``KNEO_SERV_OTEL_RECORD_*`` say so, already
redacted by the engine (``describe_for_trace``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

from kneo import __version__
from kneo.errors import ConfigError
from kneo.redaction import redact_text

if TYPE_CHECKING:
    from kneo.settings import Settings

_tracer: Any = None
_lock = threading.Lock()


def configure(settings: Settings) -> bool:
    """Start tracing when ``settings.otel_enabled`` (idempotent); whether it is on."""
    global _tracer
    if not settings.otel_enabled or _tracer is not None:
        return _tracer is not None
    with _lock:
        if _tracer is None:
            try:
                from opentelemetry import trace
                from opentelemetry.sdk.trace import TracerProvider
            except ImportError:
                raise ConfigError(
                    "KNEO_SERV_OTEL_ENABLED=true needs OpenTelemetry: "
                    "pip install 'kneo-platform[otel]'",
                    variable="KNEO_SERV_OTEL_ENABLED",
                ) from None

            provider = trace.get_tracer_provider()
            if not isinstance(provider, TracerProvider):  # nobody installed one: ours
                provider = _provider(settings.environ)
                trace.set_tracer_provider(provider)
            _tracer = provider.get_tracer("kneo", __version__)
    return True


def _provider(env: Mapping[str, str]) -> Any:
    """An SDK provider exporting where the standard ``OTEL_*`` variables say."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    named = env.get("OTEL_SERVICE_NAME") or "service.name=" in env.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    )
    provider = TracerProvider(resource=Resource.create({} if named else {"service.name": "kneo"}))
    for name in (env.get("OTEL_TRACES_EXPORTER") or "otlp").split(","):
        name = name.strip()
        if name in ("", "none"):
            continue
        if name == "console":
            exporter: Any = ConsoleSpanExporter()
        elif name == "otlp":
            protocol = (
                env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
                or "http/protobuf"
            )
            if protocol != "http/protobuf":
                raise ConfigError(
                    f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: Kneo exports OTLP over HTTP "
                    "(http/protobuf) only",
                    variable="OTEL_EXPORTER_OTLP_PROTOCOL",
                )
            try:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                    OTLPSpanExporter,
                )
            except ImportError:
                raise ConfigError(
                    "OTEL_TRACES_EXPORTER=otlp needs the OTLP exporter: "
                    "pip install 'kneo-platform[otel]'",
                    variable="OTEL_TRACES_EXPORTER",
                ) from None
            exporter = OTLPSpanExporter()  # reads OTEL_EXPORTER_OTLP_* itself
        else:
            raise ConfigError(
                f"OTEL_TRACES_EXPORTER: unknown exporter {name!r} (otlp, console or none)",
                variable="OTEL_TRACES_EXPORTER",
            )
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def tracer() -> Any:
    """The tracer, or ``None`` while tracing is off (the check every hook makes first)."""
    return _tracer


def attributes(values: Mapping[str, Any]) -> dict[str, Any]:
    """Span attributes: ``None`` dropped, every string through the redaction policy."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, str):
            value = redact_text(value)  # its own prefilter returns a clean string untouched
        out[key] = value
    return out


def start_span(
    name: str,
    *,
    parent: Any = None,
    attrs: Mapping[str, Any] | None = None,
    links: list[Any] | None = None,
    start_time: int | None = None,
    kind: Any = None,
) -> Any:
    """A started span (tracing must be on): child of ``parent`` (a span) or else of the
    current context; ``INTERNAL`` unless ``kind`` says (``client_kind()`` for a call out)."""
    from opentelemetry import trace

    context = trace.set_span_in_context(parent) if parent is not None else None
    return _tracer.start_span(
        name,
        context=context,
        kind=kind if kind is not None else trace.SpanKind.INTERNAL,
        attributes=attributes(attrs or {}),
        links=links,
        start_time=start_time,
    )


@contextmanager
def span(name: str, **attrs: Any) -> Iterator[Any]:
    """A span around a block, current inside it; ``None`` (and no cost) while off."""
    if _tracer is None:
        yield None
        return
    with _tracer.start_as_current_span(name, attributes=attributes(attrs)) as current:
        yield current


@contextmanager
def client_span(name: str, **attrs: Any) -> Iterator[Any]:
    """:func:`span` for a call out of the process (a ``CLIENT`` span, as the semantic
    conventions ask of a request to a remote service): current inside the block, so the
    outgoing request can carry its context; ``None`` while off."""
    if _tracer is None:
        yield None
        return
    from opentelemetry import trace

    with _tracer.start_as_current_span(
        name, kind=trace.SpanKind.CLIENT, attributes=attributes(attrs)
    ) as current:
        yield current


def client_kind() -> Any:
    """``SpanKind.CLIENT``, for :func:`start_span` (tracing must be on)."""
    from opentelemetry import trace

    return trace.SpanKind.CLIENT


def current(target: Any) -> AbstractContextManager[Any]:
    """``target`` as the current span inside the block (not ended on exit); no-op for
    ``None``."""
    if target is None:
        return nullcontext()
    from opentelemetry import trace

    return trace.use_span(target, end_on_exit=False)


def server_span(method: str, headers: Iterable[tuple[bytes, bytes]]) -> Any:
    """An HTTP server span, child of the caller's ``traceparent`` when it sent one; named
    ``METHOD route`` once the route is known (:func:`end_server_span`)."""
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    wanted = {b"traceparent", b"tracestate"}
    incoming = {k.decode("latin-1"): v.decode("latin-1") for k, v in headers if k in wanted}
    parent = TraceContextTextMapPropagator().extract(incoming) if incoming else None
    return _tracer.start_span(
        method,
        context=parent,
        kind=trace.SpanKind.SERVER,
        attributes={"http.request.method": method},
    )


def end_server_span(target: Any, route: str, status: int) -> None:
    target.update_name(f"{target.attributes.get('http.request.method', '')} {route}".strip())
    target.set_attributes({"http.route": route, "http.response.status_code": status})
    if status >= 500:
        fail(target, str(status))
    target.end()


def fail(target: Any, code: str, message: str | None = None) -> None:
    """Mark ``target`` failed with a stable code (the message redacted)."""
    from opentelemetry.trace import Status, StatusCode

    target.set_attribute("error.type", code)
    target.set_status(Status(StatusCode.ERROR, redact_text(message or code)[:500]))


def carrier(target: Any) -> dict[str, str]:
    """``target``'s W3C trace context (``traceparent``), to store and link to later."""
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    out: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(out, trace.set_span_in_context(target))
    return out


def links_to(stored: Any) -> list[Any]:
    """A span link to a stored trace context (none when absent or malformed)."""
    if not isinstance(stored, Mapping) or not isinstance(stored.get("traceparent"), str):
        return []
    from opentelemetry import trace
    from opentelemetry.trace import Link
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    context = TraceContextTextMapPropagator().extract({"traceparent": stored["traceparent"]})
    linked = trace.get_current_span(context).get_span_context()
    return [Link(linked, {"kneo.link": "resumed_from"})] if linked.is_valid else []


def stored_span(stored: Any) -> Any:
    """The (non-recording) span a stored trace context names, to parent a span that
    continues its trace in another process; ``None`` when absent or malformed."""
    if not isinstance(stored, Mapping) or not isinstance(stored.get("traceparent"), str):
        return None
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    context = TraceContextTextMapPropagator().extract({"traceparent": stored["traceparent"]})
    found = trace.get_current_span(context)
    return found if found.get_span_context().is_valid else None


def link_to_current(kind: str) -> list[Any]:
    """A span link to the current span (the request being served), marked ``kind``; none
    outside a span."""
    from opentelemetry import trace
    from opentelemetry.trace import Link

    context = trace.get_current_span().get_span_context()
    return [Link(context, {"kneo.link": kind})] if context.is_valid else []


__all__ = [
    "attributes",
    "carrier",
    "client_kind",
    "client_span",
    "configure",
    "current",
    "end_server_span",
    "fail",
    "link_to_current",
    "links_to",
    "server_span",
    "span",
    "start_span",
    "stored_span",
    "tracer",
]
