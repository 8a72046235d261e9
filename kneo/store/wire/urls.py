"""``KNEO_SERV_DATABASE_URL`` read by ``sqlalchemy.make_url``, with the two places where
``make_url`` silently drops text refused instead: after an IPv6 host's ``]``, and from a
newline in the query on (a URL read as something else than was written is a config error,
not a different database). A hand-written parser saved 2.2 M instructions at start-up, 0.1 %
of a fresh process: it did not earn its keep (issue 57) and was removed.
"""

from __future__ import annotations

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


def _split(url: str) -> sa.URL:
    """``make_url(url)``; a ``ValueError`` where it would leave text unread."""
    if "\n" in url:
        raise ValueError("a line break in the URL")
    parsed = sa.make_url(url)
    start = url.find(f"[{parsed.host}]") if parsed.host else -1
    after = start + len(f"[{parsed.host}]")
    if start >= 0 and url[after : after + 1] not in ("", ":", "/", "?"):
        raise ValueError("text after the host")
    return parsed
