"""Where the console's links point and where its session cookie lives: a route's path under
wherever the console is mounted, the only places a sign-in may go on to, the cookie itself."""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit

from fastapi import Request
from fastapi.responses import Response

from kneo.console.auth import ConsoleAuth
from kneo.console.session import COOKIE, Session

#: Characters a path segment keeps unquoted (RFC 3986 ``pchar``): run ids hold ``:``.
_PATH_SAFE = ":@!$&'()*+,;="


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
    return str(request.scope.get("root_path") or "/ui")


def console_path(request: Request, name: str, **params: Any) -> str:
    """The path of the console route ``name``, under wherever the console is mounted.

    Starlette looks a route up by name through every route (~75 us here); the inbox links
    each of its rows, so the path's pattern is looked up once per route and parameter
    names, then filled in (values URL-quoted)."""
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
    return str(request.scope.get("root_path", "")) + pattern.format_map(values)


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
