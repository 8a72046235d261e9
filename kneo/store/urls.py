"""``KNEO_SERV_DATABASE_URL`` read as SQLAlchemy reads a URL, without SQLAlchemy's parser.

``sqlalchemy.make_url`` compiles its verbose pattern on its first call in a process: about
2.2 M instructions, a fifth of a fresh process's ``create_platform()``, paid again by every
CLI command, worker and server start. :func:`parse_database_url` reads the same grammar with
string methods into the same :class:`sqlalchemy.URL`: ``tests/store/test_urls.py`` holds it
equal to ``make_url`` on every string both accept. Where ``make_url`` silently drops text
(after an IPv6 host's ``]``, from a newline in the query on) this refuses the URL instead.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote

import sqlalchemy as sa

from kneo.errors import ConfigError

__all__ = ["parse_database_url"]


def parse_database_url(url: str) -> sa.URL:
    """``url`` parsed; a ``config_error`` naming ``KNEO_SERV_DATABASE_URL`` when it is not a
    database URL or its port is not a TCP port. The message never repeats the URL (it
    holds the password)."""
    try:
        parsed = _split(url)
        port = parsed.port
    except (sa.exc.ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise ConfigError(
            "KNEO_SERV_DATABASE_URL is not a database URL "
            "(dialect+driver://user:password@host:port/database, the port a number)",
            variable="KNEO_SERV_DATABASE_URL",
        ) from None
    if port is not None and not 1 <= port <= 65535:
        raise ConfigError(
            f"KNEO_SERV_DATABASE_URL: port {port} is not a TCP port (1-65535)",
            variable="KNEO_SERV_DATABASE_URL",
        )
    return parsed


def _first(text: str, chars: str) -> int:
    """The index of the first of ``chars`` in ``text``, or its length."""
    found = [i for i in map(text.find, chars) if i >= 0]
    return min(found) if found else len(text)


def _split(url: str) -> sa.URL:
    """SQLAlchemy's grammar, ``name://[user[:password]@][host | [ipv6]][:port][/database]
    [?query]``, matched as its pattern matches (the comments say which part of it); a
    ``ValueError`` where that pattern fails or would leave text unread."""
    name, sep, rest = url.partition("://")
    if not sep or not name or not all(c.isalnum() or c in "_+" for c in name):  # [\w\+]+://
        raise ValueError("no dialect name")
    # [^:/]* (?: :[^@]* )? @ -- the password runs to the first @ after the user's colon;
    # without one, the user is all before the last @ ahead of any : or /
    username: str | None = None
    password = host = port = database = query = username
    stop = _first(rest, ":/")
    at = rest.find("@", stop + 1) if rest.startswith(":", stop) else -1
    if at >= 0:
        username, password, rest = rest[:stop], rest[stop + 1 : at], rest[at + 1 :]
    elif (at := rest.rfind("@", 0, stop)) >= 0:
        username, rest = rest[:at], rest[at + 1 :]
    # \[ [^/?]+ \] (to the last ] ahead of any / or ?) | [^/:?]+
    close = rest.rfind("]", 2, _first(rest, "/?")) if rest.startswith("[") else -1
    if close >= 0:
        host, rest = rest[1:close], rest[close + 1 :]
    else:
        stop = _first(rest, "/:?")
        host, rest = rest[:stop] or None, rest[stop:]
    if rest.startswith(":"):  # :[^/?]*
        stop = _first(rest, "/?")
        port, rest = rest[1:stop], rest[stop:]
    if rest.startswith("/"):  # /[^?]*
        stop = _first(rest, "?")
        database, rest = rest[1:stop], rest[stop:]
    if rest.startswith("?") and "\n" not in rest:  # \?.*
        query, rest = rest[1:], ""
    if rest:
        raise ValueError("text after the URL")
    params: dict[str, list[str]] = {}
    for key, value in parse_qsl(query or ""):
        params.setdefault(key, []).append(value)
    return sa.URL.create(
        name,
        username=None if username is None else unquote(username),
        password=None if password is None else unquote(password),
        host=host,
        port=None if port is None else int(port),  # int(''): a ValueError, as SQLAlchemy's
        database=None if database is None else unquote(database),
        query={k: v[0] if len(v) == 1 else v for k, v in params.items()},
    )
