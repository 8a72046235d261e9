"""Signing in to the console with an API key: ``/`` (to the inbox), ``/login`` (the form and
the sign-in, which puts back a decision kept over a lost session), ``/logout``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from kneo.console.auth import ConsoleAuth
from kneo.console.drafts import SIGNED_IN_AGAIN, kept_context, kept_draft
from kneo.console.paths import console_path, cookie_path, safe_next, set_session
from kneo.console.session import COOKIE, Session
from kneo.console.tasks import redraw_draft
from kneo.console.view import Render
from kneo.errors import TooManyRequests, Unauthorized
from kneo.service.auth import sign_in


def add_signin_routes(router: APIRouter, auth: ConsoleAuth, render: Render) -> None:
    """``/`` (to the inbox), ``/login`` (form and sign-in with an API key), ``/logout``."""

    @router.get("/", include_in_schema=False)
    def home(request: Request) -> Response:
        return RedirectResponse(console_path(request, "inbox"), status_code=303)

    @router.get("/login", name="login")
    def login_page(request: Request, next: str = "") -> Response:
        session = auth.session(request)
        issue = session is None  # a pre-session: only the sign-in form's CSRF token
        if session is None:
            session = Session.anonymous()
        context = {"next": safe_next(request, next), "csrf": session.csrf}
        return render(request, "login.html", context, session=session if issue else None)

    @router.post("/login", name="login_submit")
    async def login(request: Request) -> Response:
        posted = await auth.posted(request)
        target = safe_next(request, posted.get("next", ""))
        kept = kept_draft(posted)
        try:
            principal = sign_in(
                auth.authenticator,
                auth.throttle,
                request,
                posted.get("api_key") or None,
                surface="console",
            )
        except (Unauthorized, TooManyRequests) as exc:
            fresh = Session.anonymous()
            error = (
                exc.message if isinstance(exc, TooManyRequests) else "That API key is not valid."
            )
            context: dict[str, Any] = {"next": target, "csrf": fresh.csrf, "error": error}
            if kept is not None:  # a typo in the key does not lose the answer either
                context |= kept_context(kept)
            page = render(
                request, "login.html", context, status_code=exc.http_status, session=fresh
            )
            if exc.retryable and exc.retry_after is not None:  # throttled: when to try again
                page.headers["Retry-After"] = str(exc.retry_after)
            return page
        found = auth.authenticator.named(principal.name)
        digest = found[1] if found else b""
        session = await run_in_threadpool(
            auth.open_session, principal, proof=auth.codec.proof(digest)
        )
        if kept is not None:  # back to the form it was typed in, filled in again
            viewer = auth.in_project(request, auth.viewer_of(principal, session))
            response = redraw_draft(request, viewer, render, kept, notice=SIGNED_IN_AGAIN)
        else:
            response = RedirectResponse(target or console_path(request, "inbox"), status_code=303)
        set_session(request, response, auth, session)
        return response

    @router.post("/logout", name="logout")
    async def logout(request: Request) -> Response:
        await auth.posted(request)
        await run_in_threadpool(auth.end_session, request)
        response = RedirectResponse(console_path(request, "login"), status_code=303)
        response.delete_cookie(COOKIE, path=cookie_path(request))
        return response
