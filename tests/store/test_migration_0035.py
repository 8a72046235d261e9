"""Migration 0035: ``rollout_sums`` keys its counters by kind of human request too. Rows
counted before keep their figures (kind ``''``); going back adds each shard's kinds up into
its one row. On both backends (SQLite rebuilds the table, still WITHOUT ROWID)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from kneo.store.migrate import _alembic_config, upgrade
from kneo.store.wire.dialects import dialect_for

COUNTERS = ("runs", "finished", "failed", "decided", "rejected", "edited", "escalated", "priced")
KEY = ("rollout_id", "track", "bucket", "shard")
SUMS = sa.table("rollout_sums", *(sa.column(n) for n in (*KEY, "cost", *COUNTERS)))
KINDS = sa.table("rollout_sums", *(sa.column(n) for n in (*KEY, "kind", "cost", *COUNTERS)))


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'kneo_runs.sqlite'}"
    new: Callable[[], str] = request.getfixturevalue("pg_empty_database")
    return new()


def _row(shard: int, **counts: float) -> dict[str, object]:
    return {"rollout_id": "ro_1", "track": "canary", "bucket": -1, "shard": shard, "cost": 0.0} | {
        n: counts.get(n, 0) for n in COUNTERS
    }


def _rows(engine: sa.Engine, *columns: str) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        query = sa.select(*(sa.column(n) for n in columns)).select_from(SUMS)
        return sorted(tuple(r) for r in conn.execute(query))


def test_0035_keys_the_counters_by_kind_and_back(fresh_url: str) -> None:
    url = sa.make_url(fresh_url)
    dialect = dialect_for(url)
    engine = dialect.create_engine(url)
    assert upgrade(engine, dialect, target="0034") == "0034"
    with engine.begin() as conn:
        conn.execute(sa.insert(SUMS), [_row(0, runs=3, decided=2, rejected=1), _row(1, runs=1)])
    assert upgrade(engine, dialect, target="0035") == "0035"
    assert _rows(engine, "shard", "kind", "runs", "decided", "rejected") == [
        (0, "", 3, 2, 1),
        (1, "", 1, 0, 0),
    ]
    key = sa.inspect(engine).get_pk_constraint("rollout_sums")["constrained_columns"]
    assert key == ["rollout_id", "track", "bucket", "kind", "shard"]
    with engine.begin() as conn:  # the same shard's review decisions: a row of their own
        conn.execute(sa.insert(KINDS).values(_row(0, decided=4, edited=2) | {"kind": "review"}))
    if dialect.name == "sqlite":
        with engine.connect() as conn:
            sql = conn.exec_driver_sql(
                "SELECT sql FROM sqlite_master WHERE name = 'rollout_sums'"
            ).scalar_one()
        assert "WITHOUT ROWID" in sql
    with dialect.connect_write(engine) as conn, conn.begin(), dialect.migration_lock(conn):
        command.downgrade(_alembic_config(conn), "0034")
    assert _rows(engine, "shard", "runs", "decided", "rejected", "edited") == [
        (0, 3, 6, 1, 2),
        (1, 1, 0, 0, 0),
    ]
    key = sa.inspect(engine).get_pk_constraint("rollout_sums")["constrained_columns"]
    assert key == ["rollout_id", "track", "bucket", "shard"]
    engine.dispose()
