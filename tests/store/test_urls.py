"""The database URL read by ``sqlalchemy.make_url`` (kneo.store.wire.urls): the same
``URL`` for every string both accept, and a ``config_error`` for the rest."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from kneo.errors import ConfigError
from kneo.store import parse_database_url, resolve_url

URLS = [
    "sqlite://",
    "sqlite:///relative/kneo.db",
    "sqlite:////tmp/abs/kneo.db",
    "sqlite:///:memory:",
    "sqlite:///C:\\state\\kneo.db",
    "sqlite:///with%20space.db",
    "sqlite+pysqlite:///x.db?timeout=5",
    "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
    "postgresql://user:secret@db.example.com/kneo",
    "postgresql://user:p%40ss%2Fw%3Ard@db:6432/kneo?sslmode=require",
    "postgresql://user:pa/ss@db/kneo",  # an unencoded / in the password
    "postgresql://user:pa:ss@db/kneo",
    "postgresql://us%20er:@db/kneo",  # an empty password
    "postgresql://user@/kneo?host=/var/run/postgresql",
    "postgresql://a@b@db/kneo",  # an @ in the name: all before the last @
    "postgresql://[::1]:5432/kneo",
    "postgresql://user:pw@[2001:db8::7]/kneo",
    "postgresql://[a]b]:5432/kneo",  # to the last ] ahead of the path
    "postgresql:///kneo?host=a&host=b&port=5432&port=5433",
    "postgresql://db/kneo?application_name=&sslmode=disable",
    "postgresql://db:5432",
    "postgresql://db/",
    "mysql+pymysql://root@localhost/test?charset=utf8mb4",
    "dialect_é+drv://h/d",
]


@pytest.mark.parametrize("url", URLS)
def test_a_url_reads_as_sqlalchemy_reads_it(url: str) -> None:
    assert tuple(parse_database_url(url)) == tuple(sa.make_url(url))


def _sqlalchemy(url: str) -> sa.URL | None:
    try:
        parsed = sa.make_url(url)
        parsed.port  # noqa: B018  (a port SQLAlchemy cannot read raises here or above)
    except (sa.exc.ArgumentError, ValueError):
        return None
    return parsed


@settings(max_examples=2000, deadline=None)
@given(
    st.lists(
        st.sampled_from(["://", ":", "/", "@", "?", "[", "]", "=", "&", "%40", "\n", "+", "_"])
        | st.sampled_from(["a", "b", "1", "5432", "é", "::1", " ", "host"]),
        max_size=14,
    ).map("".join)
)
def test_any_string_is_read_as_sqlalchemy_reads_it_or_refused(text: str) -> None:
    """The same URL, or a ``config_error``: never a different URL. It refuses what
    SQLAlchemy reads only where SQLAlchemy drops text (after ``]``, from a newline on)."""
    for url in (text, "postgresql+psycopg://" + text, "sqlite:" + text):
        theirs = _sqlalchemy(url)
        try:
            ours = parse_database_url(url)
        except ConfigError:
            if theirs is not None and theirs.port is not None and not 0 < theirs.port < 65536:
                continue  # a port no TCP connection has
            assert theirs is None or "]" in url or "\n" in url, url
            continue
        assert theirs is not None, url
        assert tuple(ours) == tuple(theirs), url


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("not a url", "not a database URL"),
        ("postgresql://user:hunter2-planted@db:notaport/kneo", "not a database URL"),
        ("postgresql://user:hunter2-planted@db:0/kneo", "port 0 is not a TCP port"),
        ("postgresql://user:hunter2-planted@db:70000/kneo", "port 70000 is not a TCP port"),
        ("postgresql://user:hunter2-planted@[::1]x/kneo", "not a database URL"),
    ],
)
def test_a_bad_url_is_a_config_error_without_the_password(url: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_database_url(url)
    assert says in str(caught.value)
    assert caught.value.code == "config_error"
    assert "hunter2" not in str(caught.value)
    assert "KNEO_SERV_DATABASE_URL" in str(caught.value)


def test_a_postgresql_url_is_given_the_psycopg_driver() -> None:
    for url in ("postgresql://db/kneo", "postgresql+psycopg2://db/kneo"):
        assert resolve_url(url).get_driver_name() == "psycopg"
