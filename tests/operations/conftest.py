"""Fixtures for the operations suite: a project in a tmp dir, fresh PostgreSQL databases,
and real ``kneo worker`` / ``kneo service serve`` processes.

Sizes: ``KNEO_OPS_RUNS`` (queued runs drained, default 200; the issue's full size is 1000)
and ``KNEO_OPS_KILLS`` (kill -9 repetitions, default 3; full size 20).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .helpers import Procs, make_project


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "proj")


@pytest.fixture
def procs() -> Iterator[Procs]:
    running = Procs()
    yield running
    running.stop_all()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, project: Path) -> str:
    """A database URL per backend (SQLite inside the project's state dir)."""
    if request.param == "sqlite":
        return f"sqlite:///{project / '.kneo' / 'kneo_runs.sqlite'}"
    new: Callable[[], str] = request.getfixturevalue("pg_database")
    return new()
