"""Fixtures for the operations suite: a project in a tmp dir, fresh PostgreSQL databases,
and real ``kneo worker`` / ``kneo service serve`` processes.

Sizes: ``KNEO_OPS_RUNS`` (queued runs drained, default 200; the issue's full size is 1000)
and ``KNEO_OPS_KILLS`` (kill -9 repetitions, default 3; full size 20).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from .helpers import Procs, make_project

PG_ENV = "KNEO_TEST_DATABASE_URL"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "proj")


@pytest.fixture
def procs() -> Iterator[Procs]:
    running = Procs()
    yield running
    running.stop_all()


@pytest.fixture
def pg_database() -> Iterator[Callable[[], str]]:
    """``new()`` -> URL of a fresh, empty PostgreSQL database (dropped afterwards)."""
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} not set: PostgreSQL operations tests need a server")
    admin_url = sa.make_url(base)
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    names: list[str] = []

    def new() -> str:
        name = f"kneo_ops_{secrets.token_hex(4)}"
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        names.append(name)
        return admin_url.set(database=name).render_as_string(hide_password=False)

    yield new
    with admin.connect() as conn:
        for name in names:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, project: Path) -> str:
    """A database URL per backend (SQLite inside the project's state dir)."""
    if request.param == "sqlite":
        return f"sqlite:///{project / '.kneo' / 'kneo_runs.sqlite'}"
    new: Callable[[], str] = request.getfixturevalue("pg_database")
    return new()
