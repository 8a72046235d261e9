"""The outermost ASGI layer: request ids, the body-size limit, bounded JSON bodies, request
logs, last-resort 500.

Written as plain ASGI (not ``BaseHTTPMiddleware``) so the body limit is enforced on the
stream itself: a declared ``Content-Length`` above the limit is refused before any byte is
read, and a chunked body is counted as it arrives and refused the moment it crosses the
limit, whatever the route was doing with it. A JSON body is then read whole and checked by
:mod:`kneo.documents` (depth, values, digits, NUL, syntax) before any route parses it, and a
NUL in the path or query is refused. Route handlers add ``run_id`` /
``continuation_id`` / ``trace_id`` to the log record through :func:`annotate`.

A request log never holds a bearer capability: a path parameter that is one (a decision
link's token, :data:`BEARER_PATH_PARAMS`) is logged as ``[REDACTED]``, and a path no route
matched has every segment that looks like a token reduced (:func:`logged_path`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kneo import metrics, tracing
from kneo.documents import DocumentError, parse_json
from kneo.errors import ErrorCode, InvalidRequest, KneoError, PayloadTooLarge
from kneo.logs import get_logger
from kneo.redaction import REDACTED, may_need_redaction, redact
from kneo.service.errors import error_headers
from kneo.service.project_paths import project_path
from kneo.store.wire.driver_errors import database_error

LOGGER_NAME = "kneo_serv.service"
logger = get_logger(LOGGER_NAME)
logger.propagate = False  # JSON lines to the service's own stderr handler, not the root's

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_LOG_FIELDS = ("run_id", "continuation_id", "trace_id")
#: Path parameters that are bearer capabilities: whoever holds the URL acts with it (a
#: decision link's ``/ui/decide/{token}``). Request logs show them as ``[REDACTED]``.
BEARER_PATH_PARAMS = frozenset({"token"})
_PARAM = re.compile(r"\{(\w+)(?::[^}]*)?\}")
#: a segment that may be a capability: long, and mixing letters and digits
_TOKEN_LIKE = re.compile(r"(?=.*[A-Za-z])(?=.*\d).{16,}")


class _BodyTooLarge(Exception):
    """Raised from ``receive`` when the streamed body crosses the limit."""


def annotate(request: Request, **fields: Any) -> None:
    """Attach ids (run, continuation, trace) to this request's log record."""
    extra: dict[str, Any] = request.scope.setdefault("state", {}).setdefault("log_fields", {})
    extra.update({k: v for k, v in fields.items() if v is not None})


def envelope_bytes(error: dict[str, Any]) -> bytes:
    return json.dumps(error, separators=(",", ":")).encode("utf-8")


class _Exchange:
    """One request's side of the ASGI conversation: its id on every response, the streamed
    body limit, and the status actually sent (for the log and the metrics)."""

    def __init__(self, request_id: str, limit: int, receive: Receive, send: Send) -> None:
        self.request_id = request_id
        self.limit = limit
        self._receive = receive
        self._send = send
        self.code = 500
        self.started = False
        self.too_large = False
        self.received = 0

    async def receive(self) -> Message:
        """The client's messages, until the body passes the limit."""
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limit:
                self.too_large = True
                raise _BodyTooLarge()
        return message

    async def send(self, message: Message) -> None:
        """The app's response with the request id; nothing of it once the limit was hit."""
        if message["type"] == "http.response.start":
            if self.too_large:  # the app answered something else; the limit wins
                return
            self.code = message["status"]
            self.started = True
            message.setdefault("headers", [])
            message["headers"] = [
                *[(k, v) for k, v in message["headers"] if k.lower() != b"x-request-id"],
                (b"x-request-id", self.request_id.encode("latin-1")),
            ]
        elif message["type"] == "http.response.body" and self.too_large:
            return
        await self._send(message)

    async def send_error(self, code: int, error: dict[str, Any]) -> None:
        """The error envelope (redacted, with the request id) as the whole response."""
        body = envelope_bytes({**redact(error), "request_id": self.request_id})
        self.code = code
        self.started = True
        await self._send(
            {
                "type": "http.response.start",
                "status": code,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"x-request-id", self.request_id.encode("latin-1")),
                    *(
                        (k.lower().encode(), v.encode())
                        for k, v in error_headers(code, str(error.get("error", ""))).items()
                    ),
                ],
            }
        )
        await self._send({"type": "http.response.body", "body": body})

    async def unhandled(self, scope: Scope, exc: Exception) -> None:
        """An exception the app let through: logged (a traceback unless it is a database
        outage) and answered, 503 for an outage, else 500, when no response has started."""
        mapped = database_error(exc)
        logger.error(
            json.dumps(
                redact(
                    {
                        "event": "http_unhandled_error",
                        "request_id": self.request_id,
                        "method": scope.get("method"),
                        "path": logged_path(scope),
                    }
                )
            ),
            exc_info=exc if mapped is None else False,  # an outage is not a bug: no traceback
        )
        if self.started:
            return
        if mapped is not None:
            await self.send_error(mapped.http_status, mapped.to_dict())
        else:
            await self.send_error(
                500,
                {
                    "error": ErrorCode.internal_error,
                    "message": "Internal server error; see the service log for this request id",
                },
            )


class RequestContextMiddleware:
    """Request id in and out, streamed body limit, one JSON log record per request."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, request_logs: bool = True) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.request_logs = request_logs

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        span = (
            tracing.server_span(scope.get("method", ""), scope["headers"])
            if tracing.tracer() is not None
            else None
        )
        incoming, declared = _wanted_headers(scope["headers"])
        request_id = incoming if _REQUEST_ID.match(incoming) else os.urandom(16).hex()
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        ex = _Exchange(request_id, self.max_body_bytes, receive, send)
        if declared is not None and declared.isdigit() and int(declared) > ex.limit:
            await ex.send_error(413, _too_large(ex.limit))
            self._done(scope, request_id, 413, started, span)
            return
        try:
            refused = _refused_target(scope)
            if refused is None:
                try:
                    scope = project_path(scope)
                except KneoError as exc:
                    refused = exc
            app_receive: Receive = ex.receive
            if refused is None and _is_json(scope["headers"]):
                body = await _read_body(ex.receive)
                refused = _refused_json(body)
                app_receive = _replay(body, receive)
            if refused is not None:
                await ex.send_error(refused.http_status, refused.to_dict())
            else:
                with tracing.current(span):
                    await self.app(scope, app_receive, ex.send)
        except _BodyTooLarge:
            pass
        except Exception as exc:
            await ex.unhandled(scope, exc)
        if ex.too_large:
            await ex.send_error(413, _too_large(ex.limit))
        self._done(scope, request_id, ex.code, started, span)

    def _done(
        self, scope: Scope, request_id: str, status_code: int, started: float, span: Any
    ) -> None:
        route = route_template(scope)
        metrics.record_http(route, status_code, time.perf_counter() - started)
        if span is not None:
            tracing.end_server_span(span, route, status_code)
        self._log(scope, request_id, status_code, started)

    def _log(
        self,
        scope: Scope,
        request_id: str,
        status_code: int,
        started: float,
    ) -> None:
        if not self.request_logs or not logger.isEnabledFor(logging.INFO):
            return
        client = scope.get("client")
        record: dict[str, Any] = {
            "event": "http_request",
            "request_id": request_id,
            "method": scope.get("method"),
            "path": logged_path(scope),
            "status": status_code,
            "duration_ms": round((time.perf_counter() - started) * 1000, 3),
            "client": client[0] if client else None,
        }
        fields = scope.get("state", {}).get("log_fields", {})
        record.update({k: fields[k] for k in _LOG_FIELDS if k in fields})
        actor = scope.get("state", {}).get("actor")
        if actor:
            record["actor"] = actor
        # The keys are fixed and name no secret, so only the string values can need
        # redaction: one prefilter scan over them (a request id, a path, ids, a key name;
        # nearly always clean) is ~3 µs where ``redact`` on the record is ~10.
        if may_need_redaction("\n".join(v for v in record.values() if isinstance(v, str))):
            record = redact(record)
        logger.info(json.dumps(record, separators=(",", ":")), extra={"kneo": record})


def route_template(scope: Scope) -> str:
    """The matched route's template (``/v1/runs/{run_id}``), never the raw path, so metric
    labels and span names stay bounded; ``unmatched`` when no route matched (404s)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if not isinstance(path, str):
        return "unmatched"
    # An included router's route knows its path without the router's prefix (``/v1``): take
    # the prefix from the request path, whose segments the template's match one for one.
    raw = scope.get("path", "").split("/")
    extra = len(raw) - len(path.split("/"))
    prefix = "/".join(raw[: extra + 1]) if extra > 0 else ""
    return f"{prefix}{path}"


def logged_path(scope: Scope) -> str:
    """The request's path as a log may show it: a bearer path parameter of the matched route
    replaced by ``[REDACTED]``; on a path no route matched, every token-like segment."""
    path: str = scope.get("path", "")
    template = route_template(scope)
    if template == "unmatched":
        if len(path) < 17:
            return path
        return "/".join(
            REDACTED if _TOKEN_LIKE.fullmatch(part) else part for part in path.split("/")
        )
    if "{" not in template or not any("{" + name in template for name in BEARER_PATH_PARAMS):
        return path
    params = scope.get("path_params") or {}

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        return REDACTED if name in BEARER_PATH_PARAMS else str(params.get(name, match.group(0)))

    return _PARAM.sub(value, template)


def _refused_target(scope: Scope) -> KneoError | None:
    """A NUL anywhere in the path or query: no identifier or filter holds one, and
    PostgreSQL's text cannot, so it is refused here rather than failing in a query."""
    if "\x00" in scope.get("path", "") or b"%00" in scope.get("query_string", b"").lower():
        return InvalidRequest("the request path or query contains a NUL character")
    return None


def _is_json(raw: Any) -> bool:
    """Whether FastAPI will parse the body as JSON: its rule (a ``json`` or ``+json``
    subtype, ``text/json`` too), so no body reaches its parser around this check."""
    for key, value in raw:
        if key.lower() == b"content-type":
            media: bytes = value.split(b";", 1)[0].strip().lower()
            subtype = media.rpartition(b"/")[2].strip()
            return subtype == b"json" or subtype.endswith(b"+json")
    return False


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _refused_json(body: bytes) -> KneoError | None:
    """A JSON body enters through :mod:`kneo.documents`, like every untrusted document: over
    a limit it is ``E_DOCUMENT_*`` (400, 413 for size), malformed it is ``400
    invalid_request``, before FastAPI's recursive ``json.loads`` ever sees it."""
    if not body:
        return None
    try:
        parse_json(body, source="request body", forbid_nul=True)
    except DocumentError as exc:
        if exc.code == "E_JSON":
            return InvalidRequest(f"the request body is not valid JSON: {exc.message}")
        return exc
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the app the body already read, then the real stream."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _wanted_headers(raw: Any) -> tuple[str, str | None]:
    """``(X-Request-ID or "", Content-Length or None)`` from the raw ASGI headers, without
    decoding every header of every request into a dict."""
    request_id, length = "", None
    for key, value in raw:
        name = key.lower()
        if name == b"x-request-id":
            request_id = value.decode("latin-1")
        elif name == b"content-length":
            length = value.decode("latin-1")
    return request_id, length


def _too_large(limit: int) -> dict[str, Any]:
    return PayloadTooLarge(
        f"Request body exceeds the {limit}-byte limit (KNEO_SERV_MAX_BODY_BYTES)",
        limit_bytes=limit,
    ).to_dict()
