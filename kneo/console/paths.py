"""Where the console's links point and where its session cookie lives: a route's path under
wherever the console is mounted (and under the project of the page), the only places a
sign-in may go on to, the cookie itself.

A page of a project is ``<console>/p/<project>/<page>``. :class:`ProjectPaths`, the console
app's outermost middleware, moves ``/p/<project>`` into the request's ``root_path`` (the
project into :data:`CONSOLE_PROJECT`), so the routes match as without it and every link
:func:`console_path` makes keeps the project without naming it. The session cookie, the
static files, the OpenID sign-in and the decision links live at the console's own root
(:data:`CONSOLE_ROOT`), the same for every project."""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit

from fastapi import Request
from fastapi.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from kneo.console.auth import CONSOLE_PROJECT, CONSOLE_ROOT, PROJECT_PREFIX, ConsoleAuth
from kneo.console.session import COOKIE, Session

#: Characters a path segment keeps unquoted (RFC 3986 ``pchar``): run ids hold ``:``.
_PATH_SAFE = ":@!$&'()*+,;="
#: Routes that are the console's, not a project's: their links never carry a project (the
#: OpenID provider knows one redirect URI; a decision link's token names its project).
_ROOT_ROUTES = frozenset(
    {"static", "oidc_login", "oidc_callback", "decision_link", "decision_link_decide"}
)


class ProjectPaths:
    """ASGI middleware: ``<root>/p/<project>/<rest>`` is ``<rest>`` under the root path
    ``<root>/p/<project>``, acting in ``<project>``; every request keeps the console's own
    root in :data:`CONSOLE_ROOT`. The name is checked where the page is (a 404 page)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope = project_scope(scope)
        await self.app(scope, receive, send)


def project_scope(scope: Scope) -> Scope:
    """``scope`` with its project's prefix moved into ``root_path`` (see :class:`ProjectPaths`)."""
    root: str = scope.get("root_path", "")
    path: str = scope["path"]
    scope = {**scope, CONSOLE_ROOT: root}
    rest = path[len(root) :] if path.startswith(root) else path
    if not rest.startswith(PROJECT_PREFIX):
        return scope
    name, slash, _ = rest[len(PROJECT_PREFIX) :].partition("/")
    if not name:
        return scope
    prefixed = root + PROJECT_PREFIX + name
    if not slash:  # <root>/p/<project>: its home page
        path = prefixed + "/"
    return {**scope, "root_path": prefixed, "path": path, CONSOLE_PROJECT: name}


def set_session(request: Request, response: Response, auth: ConsoleAuth, session: Session) -> None:
    """The session cookie: signed, expiring, HttpOnly, SameSite=Strict, Secure over HTTPS."""
    response.set_cookie(
        COOKIE,
        auth.codec.dumps(session),
        max_age=auth.codec.max_age,
        path=cookie_path(request),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def cookie_path(request: Request) -> str:
    """The console's own root (every project's pages share the session)."""
    scope = request.scope
    return str(scope.get(CONSOLE_ROOT) or scope.get("root_path") or "/ui")


def console_path(request: Request, name: str, **params: Any) -> str:
    """The path of the console route ``name``, under wherever the console is mounted and,
    for a project's page, under the project of this request."""
    base = cookie_path(request) if name in _ROOT_ROUTES else request.scope.get("root_path", "")
    return str(base) + _route_path(request, name, params)


def project_page(request: Request, project: str, name: str, **params: Any) -> str:
    """The path of the console route ``name`` in ``project`` (the switcher's links)."""
    prefix = cookie_path(request) + PROJECT_PREFIX + quote(project, safe="")
    return prefix + _route_path(request, name, params)


def _route_path(request: Request, name: str, params: Mapping[str, Any]) -> str:
    """Route ``name``'s path in the console app, ``params`` URL-quoted into it.

    Starlette looks a route up by name through every route (~75 us here); the inbox links
    each of its rows, so the path's pattern is looked up once per route and parameter
    names, then filled in."""
    console = request.scope["app"]
    key = (name, *sorted(params))
    formats: dict[tuple[str, ...], str] = console.state.path_formats
    pattern = formats.get(key)
    if pattern is None:
        marked = {k: f"\x00{k}\x00" for k in params}
        pattern = str(console.url_path_for(name, **marked)).replace("{", "{{").replace("}", "}}")
        for k in params:
            pattern = pattern.replace(f"\x00{k}\x00", "{" + k + "}")
        formats[key] = pattern
    values = {k: quote(str(v), safe=_PATH_SAFE) for k, v in params.items()}
    return pattern.format_map(values)


def query_path(path: str, params: Mapping[str, Any]) -> str:
    kept = {k: v for k, v in params.items() if v not in (None, "")}
    return f"{path}?{urlencode(kept)}" if kept else path


def safe_next(request: Request, target: str) -> str:
    """Only a console page is a place to go after sign-in: never another site, and never a
    path that only looks like one (``/ui/../v1/...`` and its percent-encoded forms leave the
    console once a browser resolves them; control characters are dropped by browsers)."""
    root = cookie_path(request)
    if not target or "\\" in target or any(ord(c) < 0x20 or ord(c) == 0x7F for c in target):
        return ""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or parts.fragment:
        return ""
    path = posixpath.normpath(unquote(parts.path))
    if not path.startswith(root + "/") or path.startswith("//"):
        return ""
    return path + (f"?{parts.query}" if parts.query else "")  # the redirect quotes it
