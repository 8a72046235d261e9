"""``create_console``: the reviewer console as an app the service mounts at ``/ui``.

Server-rendered Jinja2 pages, one small CSS file and htmx (vendored, see
``static/htmx.VERSION``) for the inbox's and the run page's self-refresh; every decision is a
plain HTML form, so the console works without JavaScript. Pages are served with a strict
Content-Security-Policy (scripts and styles only from ``/ui/static``), no framing, and
``Cache-Control: no-store`` (they can show personal data to deciders).

The routes come in one group per resource, each module what its page shows, forms in and
redirects out: :mod:`~kneo.console.signin`, :mod:`~kneo.console.oidc`,
:mod:`~kneo.console.links`, :mod:`~kneo.console.inbox`, :mod:`~kneo.console.tasks`,
:mod:`~kneo.console.promotions`, :mod:`~kneo.console.runs`, :mod:`~kneo.console.registry`,
:mod:`~kneo.console.rollouts`, :mod:`~kneo.console.schedules`; each draws through
:class:`~kneo.console.view.PageView`.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from kneo.console.auth import ConsoleAuth, ProjectPage, SignInRequired, Viewer
from kneo.console.drafts import TOKEN_CHANGED, SessionLost, kept_context
from kneo.console.forms import KIND_LABELS
from kneo.console.inbox import add_inbox_routes
from kneo.console.links import add_link_routes
from kneo.console.oidc import add_oidc_routes
from kneo.console.paths import (
    ProjectPaths,
    console_path,
    cookie_path,
    project_page,
    safe_next,
    set_session,
)
from kneo.console.promotions import add_promotion_routes
from kneo.console.registry import add_registry_routes
from kneo.console.rollouts import add_rollout_routes
from kneo.console.runs import add_answer_route, add_run_routes, add_session_routes
from kneo.console.schedules import add_schedule_routes
from kneo.console.session import CSRF_FIELD, Session, SessionCodec
from kneo.console.signin import add_signin_routes
from kneo.console.tasks import add_task_routes, redraw_draft
from kneo.console.view import Render
from kneo.errors import ErrorCode, KneoError
from kneo.platform.decision_links import DecisionLinks
from kneo.redaction import redact_text
from kneo.settings import Settings

HERE = Path(__file__).parent
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class _NoSniffStatic(StaticFiles):
    """The console's scripts and styles, each served as exactly the type it names."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def build_router(auth: ConsoleAuth, render: Render) -> APIRouter:
    """The console's routes over ``auth`` (sessions and scopes) and ``render`` (templates),
    one group per resource: sign-in, inbox, human tasks, promotions, runs, registry,
    rollouts, schedules."""
    router = APIRouter()
    for add in (
        add_signin_routes,
        add_oidc_routes,
        add_link_routes,
        add_inbox_routes,
        add_task_routes,
        add_promotion_routes,
        add_run_routes,
        add_answer_route,
        add_session_routes,
        add_registry_routes,
        add_rollout_routes,
        add_schedule_routes,
    ):
        add(router, auth, render)
    return router


def create_console(parent: FastAPI, settings: Settings) -> FastAPI:
    """The console over ``parent``'s authenticator, platform manager and API routes (whose
    scopes its pages take: :mod:`kneo.console.auth`)."""
    secret = settings.console_secret or secrets.token_urlsafe(32)
    codec = SessionCodec(secret, settings.console_session_seconds)
    auth = ConsoleAuth(parent, parent.state.authenticator, codec)
    auth.public_url = settings.public_url
    auth.links = DecisionLinks.from_settings(settings)
    if settings.oidc.client_secret_env:
        auth.client_secret = settings.secret(settings.oidc.client_secret_env) or ""
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    env = templates.env
    env.filters["ago"] = _ago
    env.filters["until"] = _until
    env.filters["short"] = _short
    env.filters["kind_label"] = lambda kind: KIND_LABELS.get(kind, kind)
    env.globals["CSRF_FIELD"] = CSRF_FIELD
    env.globals["oidc_sign_in"] = bool(settings.oidc.enabled and settings.oidc.client_id)

    @jinja2.pass_context
    def url_for(context: Any, name: str, /, **params: Any) -> str:
        return console_path(context["request"], name, **params)

    env.globals["url_for"] = url_for

    @jinja2.pass_context
    def project_url(context: Any, project: str) -> str:
        return project_page(context["request"], project, "inbox")

    env.globals["project_url"] = project_url

    def render(
        request: Request,
        name: str,
        context: dict[str, Any],
        *,
        status_code: int = 200,
        session: Session | None = None,
    ) -> Response:
        viewer = context.get("viewer")
        context.setdefault("csrf", viewer.session.csrf if viewer is not None else None)
        context.setdefault("now", None)
        response = templates.TemplateResponse(request, name, context, status_code=status_code)
        response.headers.update(_HEADERS)
        if session is not None:
            set_session(request, response, auth, session)
        return response

    console = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    console.state.parent = parent
    console.state.path_formats = {}  # see console_path
    console.state.auth = auth
    console.mount("/static", _NoSniffStatic(directory=str(HERE / "static")), name="static")
    console.include_router(build_router(auth, render))
    console.add_middleware(ProjectPaths)
    _error_pages(console, auth, render)
    return console


def _error_pages(console: FastAPI, auth: ConsoleAuth, render: Render) -> None:
    """What the console answers instead of a route's response: an error page, the sign-in
    page (with a kept decision, :mod:`kneo.console.drafts`), or the form again."""

    def error_page(request: Request, status: int, code: str, message: str) -> Response:
        viewer = _error_viewer(request, auth)
        return render(
            request,
            "error.html",
            {"viewer": viewer, "status": status, "code": code, "message": redact_text(message)},
            status_code=status,
        )

    async def kneo_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, KneoError)
        if exc.code == ErrorCode.project_not_found:  # the page's links leave that project
            request.scope["root_path"] = cookie_path(request)
        return error_page(request, exc.http_status, exc.code, exc.message)

    async def project_page_of(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ProjectPage)
        if request.headers.get("hx-request"):  # a refresh of a page without its project
            return Response(status_code=204, headers={"HX-Redirect": exc.location})
        return RedirectResponse(exc.location, status_code=303)

    async def sign_in(request: Request, exc: Exception) -> Response:
        target = safe_next(request, request.url.path) if request.method == "GET" else ""
        query = f"?{urlencode({'next': target})}" if target else ""
        login = console_path(request, "login") + query
        if request.headers.get("hx-request"):  # a page refreshing itself: leave the page
            return Response(status_code=204, headers={"HX-Redirect": login})
        return RedirectResponse(login, status_code=303)

    async def session_lost(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SessionLost)
        if exc.viewer is not None:  # still signed in, with a newer token: the form again
            return redraw_draft(request, exc.viewer, render, exc, TOKEN_CHANGED, 403)
        fresh = Session.anonymous()
        context: dict[str, Any] = {
            "next": safe_next(request, request.url.path),
            "csrf": fresh.csrf,
        }
        context |= kept_context(exc)
        return render(request, "login.html", context, status_code=401, session=fresh)

    async def invalid(request: Request, exc: Exception) -> Response:
        return error_page(request, 400, "invalid_request", "The request was not understood.")

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: ErrorCode.not_found, 405: ErrorCode.method_not_allowed}.get(
            exc.status_code, "error"
        )
        return error_page(request, exc.status_code, code, str(exc.detail))

    console.add_exception_handler(KneoError, kneo_error)
    console.add_exception_handler(SignInRequired, sign_in)
    console.add_exception_handler(ProjectPage, project_page_of)
    console.add_exception_handler(SessionLost, session_lost)
    console.add_exception_handler(RequestValidationError, invalid)
    console.add_exception_handler(StarletteHTTPException, http_error)


def _error_viewer(request: Request, auth: ConsoleAuth) -> Viewer | None:
    """Who an error page is for: the viewer in the page's project (its switcher, its links),
    else as signed in (a project they may not enter: the page links the console's root)."""
    viewer = auth.viewer(request)
    if viewer is None:
        return None
    try:
        return auth.in_project(request, viewer)
    except KneoError:
        request.scope["root_path"] = cookie_path(request)
        return viewer


# ---------------------------------------------------------------------- template filters


def _span(seconds: float) -> str:
    seconds = abs(seconds)
    for size, unit in ((86_400, "d"), (3600, "h"), (60, "m")):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def _parse(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def _ago(value: object, now: datetime | None) -> str:
    """``5m`` for a time five minutes before ``now``."""
    when = _parse(value)
    if when is None or now is None:
        return ""
    return _span((now - when).total_seconds())


def _until(value: object, now: datetime | None) -> str:
    """``in 3h`` / ``overdue 5m`` for a deadline."""
    when = _parse(value)
    if when is None or now is None:
        return ""
    left = (when - now).total_seconds()
    return f"in {_span(left)}" if left >= 0 else f"overdue {_span(left)}"


def _short(value: object, size: int = 19) -> str:
    """A digest or commit cut for a table cell (the full value stays in the title)."""
    text = str(value or "")
    return text if len(text) <= size else text[:size] + "…"
