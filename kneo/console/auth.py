"""Who is looking at a console page, and what they may do there: the API's answer, reused.

There is no scope table here. Each console page names the API routes whose data it shows
(:data:`PAGES`), and its scopes are read from those routes when the console is built
(:func:`kneo.service.auth.route_scopes`), so a page and its API route can never disagree.
The principal comes from the API's :class:`~kneo.service.auth.Authenticator` through the
session cookie (:mod:`kneo.console.session`): the same keys, roles and scopes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from kneo.console.session import COOKIE, CSRF_FIELD, Session, SessionCodec, csrf_matches
from kneo.errors import Forbidden
from kneo.redaction import shows_personal_data
from kneo.service.auth import Authenticator, Principal, missing_scope, route_scopes

#: Console page -> the API routes (method, path) whose data it shows or whose call it makes.
PAGES: dict[str, tuple[tuple[str, str], ...]] = {
    "inbox": (("GET", "/v1/human-tasks"),),
    "task": (("GET", "/v1/human-tasks/{continuation_id}"),),
    "decide": (("POST", "/v1/human-tasks/{continuation_id}/resume"),),
    "promotion": (
        ("GET", "/v1/human-tasks/{continuation_id}"),
        ("GET", "/v1/registry/bundles/{bundle}/{environment}"),
    ),
    "run": (
        ("GET", "/v1/runs/{run_id}"),
        ("GET", "/v1/runs/{run_id}/trace"),
        ("GET", "/v1/runs/{run_id}/checkpoints"),
    ),
    "registry": (("GET", "/v1/registry/bundles"), ("GET", "/v1/controller/status")),
    "bundle": (("GET", "/v1/registry/bundles/{bundle}/{environment}"),),
    "bundle_ops": (
        ("POST", "/v1/registry/bundles/{bundle}/{environment}/rollback"),
        ("POST", "/v1/registry/bundles/{bundle}/{environment}/suspend"),
        ("POST", "/v1/registry/bundles/{bundle}/{environment}/resume"),
        ("DELETE", "/v1/registry/bundles/{bundle}/{environment}/pin"),
    ),
}


class SignInRequired(Exception):
    """No valid session: the console answers with the sign-in page."""


@dataclass(frozen=True)
class Viewer:
    """The signed-in principal and its session (for the CSRF token forms carry)."""

    principal: Principal
    session: Session
    allowed: frozenset[str]  # console pages this principal may use

    @property
    def name(self) -> str:
        return self.principal.name

    @property
    def show_personal(self) -> bool:
        return shows_personal_data(self.principal.scopes)

    def can(self, page: str) -> bool:
        return page in self.allowed


#: What a state-changing POST's dependency (:meth:`ConsoleAuth.form`) gives its route: the
#: viewer and the posted form fields.
Posted = tuple[Viewer, dict[str, str]]


class ConsoleAuth:
    """Sessions, the API's authenticator and the scopes of every console page."""

    def __init__(self, app: Any, authenticator: Authenticator, codec: SessionCodec) -> None:
        self.authenticator = authenticator
        #: the API's sign-in throttle: a wrong key on either counts against the client
        self.throttle = app.state.sign_in_throttle
        self.codec = codec
        api = {(m, p): s for m, p, s in route_scopes(app)}
        self.scopes: dict[str, frozenset[str]] = {}
        for page, routes in PAGES.items():
            missing = [r for r in routes if r not in api]
            if missing:  # a renamed API route must not silently open a page
                raise RuntimeError(f"console page {page!r} names unknown API routes {missing}")
            self.scopes[page] = frozenset(s for r in routes if (s := api[r]) is not None)

    def session(self, request: Request) -> Session | None:
        return self.codec.loads(request.cookies.get(COOKIE))

    def viewer(self, request: Request) -> Viewer | None:
        """The signed-in viewer, or ``None`` (no cookie, bad or expired signature, a key
        that was removed or rotated since sign-in)."""
        session = self.session(request)
        if session is None or session.name is None:
            return None
        found = self.authenticator.named(session.name)
        if found is None or not self.codec.proves(session, found[1]):
            return None
        principal = found[0]
        request.scope.setdefault("state", {})["actor"] = principal.name  # the request log
        return self.viewer_of(principal, session)

    def viewer_of(self, principal: Principal, session: Session) -> Viewer:
        """``principal`` as a viewer of the pages its scopes allow, in ``session``."""
        allowed = frozenset(p for p, s in self.scopes.items() if s <= principal.scopes)
        return Viewer(principal, session, allowed)

    def check(self, viewer: Viewer, page: str) -> None:
        """403 naming the first scope ``page`` needs that the viewer's key lacks."""
        missing = sorted(self.scopes[page] - viewer.principal.scopes)
        if missing:
            raise missing_scope(missing[0])

    async def posted(self, request: Request) -> dict[str, str]:
        """The posted form's text fields, once its CSRF token is this session's (403
        otherwise, before anything else is looked at)."""
        form = await request.form()
        posted: Mapping[str, Any] = {k: v for k, v in form.items() if isinstance(v, str)}
        if not csrf_matches(self.session(request), posted.get(CSRF_FIELD)):
            raise Forbidden("missing or invalid CSRF token", code="csrf_failed")
        return dict(posted)

    def page(self, page: str) -> Callable[[Request], Awaitable[Viewer]]:
        """A dependency for a GET page: the viewer, else sign-in, else 403."""
        if page not in self.scopes:
            raise ValueError(f"unknown console page {page!r}")

        async def dependency(request: Request) -> Viewer:
            viewer = self.viewer(request)
            if viewer is None:
                raise SignInRequired()
            self.check(viewer, page)
            return viewer

        return dependency

    def form(self, page: str) -> Callable[[Request], Awaitable[Posted]]:
        """A dependency for a state-changing POST: the CSRF token first (403 without it or
        with another session's), then the viewer and the page's scopes; the posted fields."""
        if page not in self.scopes:
            raise ValueError(f"unknown console page {page!r}")

        async def dependency(request: Request) -> Posted:
            posted = await self.posted(request)
            viewer = self.viewer(request)
            if viewer is None:
                raise SignInRequired()
            self.check(viewer, page)
            return viewer, posted

        return dependency
