"""Migration 0022: a step boundary's rows lose their foreign key to ``runs``, rows intact
both ways, on both backends (SQLite rebuilds the tables, still WITHOUT ROWID)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from kneo.store import tables as t
from kneo.store.migrate import _alembic_config, upgrade
from kneo.store.wire.dialects import dialect_for

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database with no schema at all."""
    if request.param == "sqlite":
        (tmp_path / "fresh").mkdir()
        return f"sqlite:///{tmp_path / 'fresh' / 'kneo_runs.sqlite'}"
    new: Callable[[], str] = request.getfixturevalue("pg_empty_database")
    return new()


def _state(engine: sa.Engine) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]], int]:
    """The two tables' rows and how many foreign keys they have."""
    with engine.connect() as conn:
        points = conn.execute(sa.select(t.checkpoints).order_by("sequence")).all()
        events = conn.execute(sa.select(t.trace_events).order_by("sequence")).all()
    keys = sum(len(sa.inspect(engine).get_foreign_keys(n)) for n in ("checkpoints", "trace_events"))
    return [tuple(r) for r in points], [tuple(r) for r in events], keys


def test_0022_drops_the_run_keys_and_back(fresh_url: str) -> None:
    url = sa.make_url(fresh_url)
    dialect = dialect_for(url)
    engine = dialect.create_engine(url)
    assert upgrade(engine, dialect, target="0021") == "0021"
    run = {"run_id": "run_a", "status": "running", "target": "workflow", "input_text": "x"}
    run |= {"spec": {}, "state": {}, "version": 1, "cancel_requested": False, "metadata": {}}
    run |= {"created_at": NOW, "updated_at": NOW, "checkpoint_seq": 2, "trace_seq": 1}
    point = {"run_id": "run_a", "type": "step", "step_id": "s0", "status": "succeeded"}
    point |= {"encoding": "json", "payload": b"{}", "size_bytes": 2, "truncated": False}
    point |= {"metadata": {}, "created_at": NOW}
    with engine.begin() as conn:
        conn.execute(sa.insert(t.runs).values(run))
        conn.execute(sa.insert(t.checkpoints), [point | {"sequence": n} for n in (1, 2)])
        conn.execute(
            sa.insert(t.trace_events).values(
                run_id="run_a", sequence=1, event_type="step.completed", payload={}, created_at=NOW
            )
        )
    before = _state(engine)
    assert before[2] == 2 and len(before[0]) == 2 and len(before[1]) == 1
    assert upgrade(engine, dialect, target="0022") == "0022"
    after = _state(engine)
    assert after[:2] == before[:2] and after[2] == 0
    if dialect.name == "sqlite":
        with engine.connect() as conn:
            sql = conn.exec_driver_sql(
                "SELECT group_concat(sql) FROM sqlite_master WHERE name IN "
                "('checkpoints', 'trace_events')"
            ).scalar_one()
        assert sql.count("WITHOUT ROWID") == 2 and "REFERENCES" not in sql
    with dialect.connect_write(engine) as conn, conn.begin(), dialect.migration_lock(conn):
        command.downgrade(_alembic_config(conn), "0021")
    assert _state(engine) == before
    engine.dispose()
