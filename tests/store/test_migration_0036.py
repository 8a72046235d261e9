"""Migration 0036: ``rollout_judgements`` (a model judge's verdicts, one per rollout and run)
appears, keyed by rollout and run, and goes again on the way back. On both backends."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from kneo.store.migrate import _alembic_config, upgrade
from kneo.store.wire.dialects import dialect_for

JUDGED = sa.table(
    "rollout_judgements",
    *(sa.column(n) for n in ("rollout_id", "run_id", "project_id", "track", "passed", "reason")),
    sa.column("judged_at", sa.DateTime(timezone=True)),
)


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'kneo_runs.sqlite'}"
    new: Callable[[], str] = request.getfixturevalue("pg_empty_database")
    return new()


def test_0036_adds_the_judgements_and_back(fresh_url: str) -> None:
    url = sa.make_url(fresh_url)
    dialect = dialect_for(url)
    engine = dialect.create_engine(url)
    assert upgrade(engine, dialect, target="0035") == "0035"
    assert not sa.inspect(engine).has_table("rollout_judgements")
    assert upgrade(engine, dialect, target="0036") == "0036"
    inspector = sa.inspect(engine)
    key = inspector.get_pk_constraint("rollout_judgements")["constrained_columns"]
    assert key == ["rollout_id", "run_id"]
    row = {
        "rollout_id": "ro_1", "run_id": "run_1", "project_id": 1, "track": "canary",
        "passed": False, "reason": "FAIL", "judged_at": datetime(2026, 3, 1, tzinfo=UTC),
    }  # fmt: skip
    with engine.begin() as conn:
        conn.execute(sa.insert(JUDGED).values(row))
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:  # a run is judged once
        conn.execute(sa.insert(JUDGED).values(row))
    with engine.connect() as conn:
        assert conn.execute(sa.select(JUDGED.c.track, JUDGED.c.passed)).all() == [("canary", False)]
    with dialect.connect_write(engine) as conn, conn.begin(), dialect.migration_lock(conn):
        command.downgrade(_alembic_config(conn), "0035")
    assert not sa.inspect(engine).has_table("rollout_judgements")
    assert upgrade(engine, dialect) == "0037"
    engine.dispose()
