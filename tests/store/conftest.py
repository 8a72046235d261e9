"""Fixtures for the store conformance suite: one ``store`` per backend.

SQLite always runs (a migrated template file copied per test). PostgreSQL runs when
``KNEO_TEST_DATABASE_URL`` points at a server: the session creates a fresh database, migrates
it once, truncates every table between tests and drops the database at the end.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

from kneo.clock import ManualClock
from kneo.settings import Settings
from kneo.store import Store, open_store
from kneo.store import tables as t
from kneo.store.list_counts import list_counts

BACKENDS = ["sqlite", "postgresql"]

if TYPE_CHECKING:
    from conftest import PgDatabases

StoreFactory = Callable[..., Store]


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("template")
    store = open_store(None, state_dir=directory)
    store.close()
    return directory / "kneo_runs.sqlite"


@pytest.fixture(scope="session")
def pg_url(pg_session_databases: PgDatabases) -> str:
    """A fresh, migrated PostgreSQL database for this test session."""
    url = pg_session_databases.new()
    open_store(url).close()
    return url


@pytest.fixture(scope="session")
def pg_engine(pg_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(pg_url)
    yield engine
    engine.dispose()


def _empty_tables(engine: sa.Engine) -> None:
    # DELETE beats TRUNCATE by far on the handful of rows a test leaves behind. The default
    # project (row 1 of ``projects``, written by migration 0026) is part of the schema.
    # The counters last: the deletes before them count themselves out (triggers).
    tables = sorted(reversed(t.metadata.sorted_tables), key=lambda x: x is list_counts)
    with engine.begin() as conn:
        for table in tables:
            keep = t.projects.c.id == 1 if table is t.projects else sa.false()
            conn.execute(table.delete().where(sa.not_(keep)))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL with the schema at head and no rows, for the current backend."""
    if backend == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        target = tmp_path / "state" / "kneo_runs.sqlite"
        target.parent.mkdir()
        shutil.copyfile(template, target)
        return f"sqlite:///{target}"
    url: str = request.getfixturevalue("pg_url")
    _empty_tables(request.getfixturevalue("pg_engine"))
    return url


@pytest.fixture
def make_store(db_url: str, clock: ManualClock) -> Iterator[StoreFactory]:
    """Open more stores on the same database (e.g. with other settings or clocks)."""
    opened: list[Store] = []

    def factory(settings: Settings | None = None, clock_: ManualClock | None = None) -> Store:
        store = open_store(db_url, settings=settings or Settings(), clock=clock_ or clock)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()
    if db_url.startswith("sqlite") and opened:
        # Whatever the test wrote, through any path (Core, raw SQL, a transaction), is stored
        # as integer microseconds (migration 0005), never as text.
        assert sqlite_timestamp_kinds(opened[0].engine) <= {"integer", "null"}


def sqlite_timestamp_kinds(engine: sa.Engine) -> set[str]:
    """SQLite ``typeof`` of every value in every timestamp column of every table."""
    parts = [
        f"SELECT DISTINCT typeof({c.name}) FROM {table.name}"
        for table in t.metadata.sorted_tables
        for c in table.c
        if isinstance(c.type, t.UTCDateTime)
    ]
    with engine.connect() as conn:
        return set(conn.execute(sa.text(" UNION ".join(parts))).scalars())


@pytest.fixture
def store(make_store: StoreFactory) -> Store:
    return make_store()
