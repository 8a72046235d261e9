"""Every failure leaves the service as the error envelope ``{"error", "message", ...}``.

:class:`~kneo.errors.KneoError` maps directly (its ``code`` and ``http_status``); FastAPI's
request validation becomes ``422 validation_error`` with field locations but never the
offending input (it may hold a secret); Starlette's own 404/405 become ``not_found`` /
``method_not_allowed``. A retryable error (its row in :class:`~kneo.errors.ErrorCode`; every
503 is one) carries ``Retry-After`` with its ``retry_after``. Unexpected exceptions are caught
one layer out, in :mod:`kneo.service.middleware`: a database driver failure that escaped
the store's own translation still becomes ``503 database_unavailable``, anything else
``500 internal_error`` without a traceback.

An error shows no absolute path of the server: a path under the project root (or a spec
root) is shown relative to it (:func:`relative_paths`), so a viewer learns nothing of the
host's layout from a spec's syntax error.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar, cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from kneo.errors import ERRORS, ErrorCode, KneoError
from kneo.redaction import redact
from kneo.spec.project import CONFIG_DIR, CONFIG_FILE

_HTTP_CODES = {
    400: ErrorCode.invalid_request,
    401: ErrorCode.unauthorized,
    403: ErrorCode.forbidden,
    404: ErrorCode.not_found,
    405: ErrorCode.method_not_allowed,
    409: ErrorCode.conflict,
    413: ErrorCode.payload_too_large,
    415: ErrorCode.unsupported_media_type,
    422: ErrorCode.validation_error,
    429: ErrorCode.too_many_requests,
    503: ErrorCode.not_ready,
}

#: The envelope as an OpenAPI schema, referenced by every route's error responses.
ERROR_RESPONSE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string", "description": "Stable machine-readable code."},
        "message": {"type": "string"},
        "required_scope": {"type": "string"},
        "request_id": {"type": "string"},
    },
    "additionalProperties": True,
}


def error_headers(
    status: int, code: str | None = None, retry_after: int | None = None
) -> dict[str, str]:
    """``WWW-Authenticate`` on 401; ``Retry-After`` on a retryable error: the error's own
    ``retry_after`` (a throttled client's wait), else its code's row (a 503's pause)."""
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    row = ERRORS.get(code) if code is not None else None
    if retry_after is None and row is not None and row.retryable:
        retry_after = row.retry_after
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return headers


_T = TypeVar("_T")


@functools.lru_cache(maxsize=16)
def _roots(cwd: str, project_config: Path | None, spec_roots: tuple[Path, ...]) -> tuple[str, ...]:
    """The directories a response shows paths relative to, longest first, each as given and
    as its real path: the project root (as :class:`~kneo.spec.project.ProjectContext` finds
    it), the spec roots and the working directory."""
    root = Path(cwd)
    if project_config is not None:
        parent = Path(project_config).absolute().parent
        root = parent.parent if parent.name == CONFIG_DIR else parent
    else:
        for directory in (root, *root.parents):
            if os.path.lexists(directory / CONFIG_DIR / CONFIG_FILE):
                root = directory
                break
    found: set[str] = set()
    for directory in (root, *(root / r for r in spec_roots), Path(cwd)):
        for form in (str(directory), os.path.realpath(directory)):
            form = form.rstrip(os.sep)
            if len(form) > 1:  # never "/": every path is under it
                found.add(form)
    return tuple(sorted(found, key=len, reverse=True))


def _relative_text(text: str, roots: Iterable[str]) -> str:
    for root in roots:
        if root in text:
            text = text.replace(root + os.sep, "")
            text = re.sub(re.escape(root) + r"(?![\w.-])", ".", text)
    return text


def relative_paths(request: Request, value: _T) -> _T:
    """``value`` (a JSON response) with every path under the project root or a spec root
    shown relative to it: an answer never tells a caller where the server keeps files."""
    settings = getattr(request.app.state, "settings", None)
    roots = _roots(
        os.getcwd(),
        getattr(settings, "project_config", None),
        tuple(getattr(settings, "spec_roots", ())),
    )
    return cast(_T, _walk(value, roots))


def _walk(value: object, roots: tuple[str, ...]) -> Any:
    if isinstance(value, str):
        return _relative_text(value, roots) if "/" in value else value
    if isinstance(value, dict):
        return {key: _walk(item, roots) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_walk(item, roots) for item in value]
    return value


def envelope_response(
    request: Request, status: int, body: dict[str, Any], retry_after: int | None = None
) -> JSONResponse:
    request_id = request.scope.get("state", {}).get("request_id")
    payload = relative_paths(request, redact(body))
    if request_id:
        payload["request_id"] = request_id
    headers = error_headers(status, str(body.get("error", "")), retry_after)
    return JSONResponse(payload, status_code=status, headers=headers)


async def _kneo_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, KneoError)
    retry_after = exc.retry_after if exc.retryable else None
    return envelope_response(request, exc.http_status, exc.to_dict(), retry_after)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = [
        {
            "loc": [str(part) for part in err.get("loc", ())],
            "message": str(err.get("msg", "")),
            "type": str(err.get("type", "")),
        }
        for err in exc.errors()
    ]
    if any(d["type"] == "json_invalid" for d in details):  # the reference: 400 invalid_request
        return envelope_response(
            request,
            400,
            {"error": ErrorCode.invalid_request, "message": "the request body is not JSON"},
        )
    first = details[0] if details else {"loc": [], "message": "invalid request"}
    where = ".".join(p for p in first["loc"] if p not in ("body", "query", "path"))
    message = f"{where}: {first['message']}" if where else str(first["message"])
    return envelope_response(
        request,
        422,
        {"error": ErrorCode.validation_error, "message": message, "details": details},
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, ErrorCode.http_error)
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    if exc.status_code == 404 and message == "Not Found":
        message = f"No route for {request.method} {request.url.path}"
        meant = route_meant(request)
        if meant:
            message += f"; did you mean {request.method} {meant}?"
    response = envelope_response(request, exc.status_code, {"error": code, "message": message})
    for key, value in (exc.headers or {}).items():
        response.headers[key] = value
    return response


#: Path words other documents use for Kneo's routes (the reference's "/continuations/{id}").
_PATH_SYNONYMS = {"continuations": "human-tasks"}


def route_meant(request: Request) -> str | None:
    """The documented route (its template) an unmatched path most likely misspells: same
    method, same number of segments, the request's own values in the template's parameters."""
    import difflib

    if len(request.url.path) > 200:  # no route is this long: not a misspelling
        return None
    parts = [_PATH_SYNONYMS.get(p, p) for p in request.url.path.strip("/").split("/")]
    wanted = "/".join(parts)
    best, score = None, 0.8  # below this, a guess misleads more than it helps
    paths: dict[str, Any] = request.app.openapi().get("paths", {})  # built once, then cached
    for template, operations in paths.items():
        if request.method.lower() not in operations:
            continue
        shape = template.strip("/").split("/")
        if len(shape) != len(parts):
            continue
        filled = "/".join(p if s.startswith("{") else s for s, p in zip(shape, parts, strict=True))
        ratio = difflib.SequenceMatcher(None, wanted, filled).ratio()
        if ratio >= score:
            best, score = template, ratio
    return best


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(KneoError, _kneo_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
