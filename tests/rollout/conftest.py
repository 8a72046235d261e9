"""The rollout tests' store: SQLite and PostgreSQL, on a manual clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from kneo.clock import ManualClock
from kneo.store import open_store


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    clock = ManualClock(datetime(2026, 3, 1, tzinfo=UTC))
    if request.param == "postgres":
        url = request.getfixturevalue("pg_database")()
    else:
        url = f"sqlite:///{tmp_path / 'kneo.sqlite'}"
    s = open_store(url, clock=clock)
    yield s
    s.close()
