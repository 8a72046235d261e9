"""Who is looking at a console page, and what they may do there: the API's answer, reused.

There is no scope table here. Each console page names the API routes whose data it shows
(:data:`PAGES`), and its scopes are read from those routes when the console is built
(:func:`kneo.service.auth.route_scopes`), so a page and its API route can never disagree.
The principal comes from the API's :class:`~kneo.service.auth.Authenticator` through the
session cookie (:mod:`kneo.console.session`): the same keys, roles and scopes.

Every page acts in one project, as an API request does: the one its path names
(``/ui/p/<project>/...``, :mod:`kneo.console.paths`), else the project the session last
viewed, else the viewer's home project. The principal is narrowed to it
(:meth:`~kneo.service.auth.Principal.in_project`), so the page's scopes are those held
there; a project the viewer holds no grant in is the same 404 page as one that does not
exist (:func:`kneo.projects.project_not_found`).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any
from urllib.parse import quote

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from kneo.console.session import (
    COOKIE,
    CSRF_FIELD,
    Session,
    SessionCodec,
    csrf_matches,
    new_session_id,
    session_key,
)
from kneo.errors import ErrorCode, Forbidden, NotFound, NotReady
from kneo.people import acting, entry_for
from kneo.projects import (
    CONSOLE_PREFIX,
    DEFAULT_PROJECT,
    is_valid_project_name,
    project_not_found,
)
from kneo.redaction import shows_personal_data
from kneo.service.auth import Authenticator, Principal, missing_scope, route_scopes
from kneo.service.dependencies import current_manager
from kneo.service.identity import person_of

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
    "run_answer": (("GET", "/v1/runs/{run_id}/events"),),
    "session_chain": (("GET", "/v1/sessions/{session_id}"),),
    "registry": (("GET", "/v1/registry/bundles"), ("GET", "/v1/controller/status")),
    "bundle": (("GET", "/v1/registry/bundles/{bundle}/{environment}"),),
    "bundle_ops": (
        ("POST", "/v1/registry/bundles/{bundle}/{environment}/rollback"),
        ("POST", "/v1/registry/bundles/{bundle}/{environment}/suspend"),
        ("POST", "/v1/registry/bundles/{bundle}/{environment}/resume"),
        ("DELETE", "/v1/registry/bundles/{bundle}/{environment}/pin"),
        ("POST", "/v1/registry/bundles/{bundle}/{environment}/pin"),
        ("POST", "/v1/registry/blocked-digests"),
    ),
    "schedules": (("GET", "/v1/schedules"),),
    "schedule_ops": (
        ("POST", "/v1/schedules/{bundle}/{environment}/{name}/pause"),
        ("POST", "/v1/schedules/{bundle}/{environment}/{name}/resume"),
    ),
    "rollout": (("GET", "/v1/rollouts/{rollout_id}"),),
    "rollout_ops": (
        ("POST", "/v1/rollouts/{rollout_id}/promote"),
        ("POST", "/v1/rollouts/{rollout_id}/abort"),
        ("POST", "/v1/rollouts/{rollout_id}/retry"),
    ),
}


#: Where the ASGI scope keeps the project a ``/p/<project>/`` path named
#: (:class:`kneo.console.paths.ProjectPaths`), and the console's own root path.
CONSOLE_PROJECT = "kneo.console.project"
CONSOLE_ROOT = "kneo.console.root"
#: What a project's pages start with, under the console's root.
PROJECT_PREFIX = CONSOLE_PREFIX
#: How long the console uses its list of the catalog's active projects (the switcher).
CATALOG_SECONDS = 5.0


class SignInRequired(Exception):
    """No valid session: the console answers with the sign-in page."""


class ProjectPage(Exception):
    """A page asked without a project by a viewer of several: its project's URL instead."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


@dataclass(frozen=True)
class Viewer:
    """The signed-in principal and its session (for the CSRF token forms carry)."""

    principal: Principal
    session: Session
    allowed: frozenset[str]  # console pages this principal may use
    #: the project the pages act in (the principal is narrowed to it) and its id
    project: str = DEFAULT_PROJECT
    project_id: int | None = None
    #: the projects this viewer may act in (the switcher; shown when there are several)
    projects: tuple[str, ...] = ()
    #: the id of the project the session last viewed (``None``: none yet)
    landing: int | None = None

    @property
    def name(self) -> str:
        return self.principal.name

    @property
    def show_personal(self) -> bool:
        return shows_personal_data(self.principal.scopes)

    def can(self, page: str) -> bool:
        return page in self.allowed

    def may_decide(self, approvers: list[str]) -> bool:
        """Whether this viewer may decide a promotion whose environment names ``approvers``
        (anyone with the decide page, when it names nobody)."""
        if not self.can("decide"):
            return False
        return not approvers or entry_for(self.principal.identity(), approvers) is not None


#: What a state-changing POST's dependency (:meth:`ConsoleAuth.form`) gives its route: the
#: viewer and the posted form fields.
Posted = tuple[Viewer, dict[str, str]]


class ConsoleAuth:
    """Sessions, the API's authenticator and the scopes of every console page."""

    def __init__(self, app: Any, authenticator: Authenticator, codec: SessionCodec) -> None:
        self.parent = app
        self.authenticator = authenticator
        #: the console's public base URL (the OpenID redirect URI), else the request's
        self.public_url = ""
        #: the OpenID client's secret (read by variable name; never logged)
        self.client_secret = ""
        #: signs and reads decision links (``None``: links are off)
        self.links: Any = None
        #: the API's sign-in throttle: a wrong key on either counts against the client
        self.throttle = app.state.sign_in_throttle
        self.codec = codec
        self._catalog: tuple[float, tuple[str, ...]] = (float("-inf"), ())
        self._catalog_lock = threading.Lock()

    @cached_property
    def scopes(self) -> dict[str, frozenset[str]]:
        """Each page's scopes: those of the API routes it mirrors, read on the first page
        served. Reading every route's scope makes FastAPI build the dependencies of the
        routes it resolves lazily, a quarter of a second of a replica's start that an
        API-only service never needed (tests/console/test_console_auth.py reads them all)."""
        api = {(m, p): s for m, p, s in route_scopes(self.parent)}
        scopes: dict[str, frozenset[str]] = {}
        for page, routes in PAGES.items():
            missing = [r for r in routes if r not in api]
            if missing:  # a renamed API route must not silently open a page
                raise RuntimeError(f"console page {page!r} names unknown API routes {missing}")
            scopes[page] = frozenset(s for r in routes if (s := api[r]) is not None)
        return scopes

    def session(self, request: Request) -> Session | None:
        return self.codec.loads(request.cookies.get(COOKIE))

    @property
    def root(self) -> Any:
        """The service's platform manager (its own project's; the others' through it)."""
        manager = current_manager(self.parent)
        if manager is None:
            raise NotReady("no platform manager is configured", check="manager")
        return manager

    @property
    def store(self) -> Any:
        """The store of the service's platform manager (the server-side sessions, global)."""
        return self.root.store

    def viewer(self, request: Request) -> Viewer | None:
        """The signed-in viewer, or ``None``: no cookie, a bad or expired signature, a
        session signed out or unknown to the store, a key removed or rotated since sign-in,
        a person the role map no longer gives a role."""
        session = self.session(request)
        if session is None or session.name is None or session.key is None:
            return None
        row = self.store.sessions.console_session(session.key)
        if row is None or row.principal != session.name:
            return None
        principal = self._principal(session, row)
        if principal is None:
            return None
        request.scope.setdefault("state", {})["actor"] = principal.name  # the request log
        return replace(self.viewer_of(principal, session), landing=row.project_id)

    def in_project(self, request: Request, viewer: Viewer) -> Viewer:
        """``viewer`` acting in the project of ``request``: the one its path names, else the
        one the session last viewed (while the viewer may still enter it), else the
        viewer's home; :func:`~kneo.projects.project_not_found` where they hold no grant or
        the project does not exist (or is archived)."""
        principal = viewer.principal
        asked = request.scope.get(CONSOLE_PROJECT)
        name = self._landing(viewer) if asked is None else asked
        if not is_valid_project_name(name) or not principal.may_enter(name):
            raise project_not_found(name)
        manager = self.root.for_project(name)  # project_not_found when not active
        narrowed = self.viewer_of(principal.in_project(name), viewer.session)
        request.scope.setdefault("state", {})["project"] = name
        return replace(
            narrowed,
            project=name,
            project_id=manager.store.project_id,
            projects=self.projects_of(principal),
            landing=viewer.landing,
        )

    def _landing(self, viewer: Viewer) -> str:
        principal = viewer.principal
        if viewer.landing is not None:
            try:
                name = str(self.store.for_project(viewer.landing).project)
            except NotFound:  # archived since
                name = ""
            if name and principal.may_enter(name):
                return name
        return principal.home

    def projects_of(self, principal: Principal) -> tuple[str, ...]:
        """The active projects ``principal`` may act in, in the catalog's order (its list
        is read again after :data:`CATALOG_SECONDS`)."""
        now = time.monotonic()
        with self._catalog_lock:
            until, names = self._catalog
        if until <= now:
            records = self.store.projects.list_projects(status="active")
            names = tuple(r.name for r in records)
            with self._catalog_lock:
                self._catalog = (now + CATALOG_SECONDS, names)
        return tuple(n for n in principal.visible_projects(names) if principal.may_enter(n))

    def remember(self, viewer: Viewer) -> None:
        """Keep ``viewer``'s project as the one its session last viewed (where a page
        without a project lands), when it changed."""
        key, project_id = viewer.session.key, viewer.project_id
        if key is not None and project_id is not None and project_id != viewer.landing:
            self.store.sessions.update_console_session(key, project_id=project_id)

    def _principal(self, session: Session, row: Any) -> Principal | None:
        if row.method == "oidc_session":
            tokens = self.authenticator.tokens
            if tokens is None or not isinstance(row.person, dict):
                return None  # OIDC switched off since this sign-in
            person = person_of(row.person, tokens.settings, self.authenticator.roles)
            if not person.roles:
                return None
            return self.authenticator.principal_of(person, method="oidc_session")
        found = self.authenticator.named(session.name or "")
        if found is None or not self.codec.proves(session, found[1]):
            return None
        return found[0]

    def open_session(
        self,
        principal: Principal,
        *,
        proof: str | None = None,
        claims: dict[str, Any] | None = None,
    ) -> Session:
        """A new server-side session for ``principal`` and its cookie's contents."""
        sid = new_session_id()
        self.store.sessions.open_console_session(
            session_key(sid),
            principal=principal.name,
            method="oidc_session" if claims is not None else "api_key",
            lifetime_seconds=self.codec.max_age,
            person=claims,
        )
        return Session(csrf=secrets.token_urlsafe(32), name=principal.name, proof=proof, sid=sid)

    def end_session(self, request: Request) -> None:
        """Sign out: the session's row is ended, so its cookie is refused from now on."""
        session = self.session(request)
        if session is not None and session.key is not None:
            self.store.sessions.update_console_session(session.key, ended=True)

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
            raise Forbidden("missing or invalid CSRF token", code=ErrorCode.csrf_failed)
        return dict(posted)

    def page(self, page: str) -> Callable[[Request], Awaitable[Viewer]]:
        """A dependency for a GET page: the viewer, else sign-in, else 403."""
        if page not in PAGES:
            raise ValueError(f"unknown console page {page!r}")

        async def dependency(request: Request) -> Viewer:
            viewer = await run_in_threadpool(self.page_viewer, request)  # reads the store
            acting(viewer.principal.identity())
            self.check(viewer, page)
            return viewer

        return dependency

    def page_viewer(self, request: Request) -> Viewer:
        """The signed-in viewer in the page's project (see :meth:`page`). A viewer who may
        act in several projects is sent from a page without a project to its project's
        URL, so every link and refresh of theirs names the project it acts in."""
        found = self.viewer(request)
        if found is None:
            raise SignInRequired()
        viewer = self.in_project(request, found)
        if CONSOLE_PROJECT not in request.scope:
            if len(viewer.projects) > 1:
                raise ProjectPage(self.project_url(request, viewer.project))
        else:
            self.remember(viewer)
        return viewer

    def project_url(self, request: Request, project: str) -> str:
        """This GET request's page, in ``project``."""
        scope = request.scope
        root = str(scope.get(CONSOLE_ROOT) or scope.get("root_path") or "")
        rest = str(scope["path"])[len(str(scope.get("root_path") or "")) :]
        query = f"?{request.url.query}" if request.url.query else ""
        return f"{root}{PROJECT_PREFIX}{quote(project, safe='')}{rest}{query}"

    def form(self, page: str) -> Callable[[Request], Awaitable[Posted]]:
        """A dependency for a state-changing POST: the CSRF token first (403 without it or
        with another session's), then the viewer and the page's scopes; the posted fields."""
        if page not in PAGES:
            raise ValueError(f"unknown console page {page!r}")

        async def dependency(request: Request) -> Posted:
            posted = await self.posted(request)
            found = await run_in_threadpool(self.viewer, request)
            if found is None:
                raise SignInRequired()
            viewer = await run_in_threadpool(self.in_project, request, found)
            acting(viewer.principal.identity())
            self.check(viewer, page)
            return viewer, posted

        return dependency
