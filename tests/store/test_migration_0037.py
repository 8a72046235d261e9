"""Migration 0037: ``list_counts`` is filled from the runs and tasks there are, its triggers
count every insert, delete and change of status, project or kind after it, and going back
drops the triggers and the table. On both backends."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from kneo.store import tables as t
from kneo.store.migrate import _alembic_config, upgrade
from kneo.store.wire.dialects import dialect_for

from .list_count_rows import counted_rows, counters, run_row, task_row


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'kneo_runs.sqlite'}"
    new: Callable[[], str] = request.getfixturevalue("pg_empty_database")
    return new()


def _triggers(engine: sa.Engine) -> set[str]:
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            query = "SELECT name FROM sqlite_master WHERE type = 'trigger'"
        else:
            query = "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"
        return {str(name) for (name,) in conn.exec_driver_sql(query)} - {
            "notification_events_notify"
        }


def test_0037_counts_the_rows_there_are_and_back(fresh_url: str) -> None:
    url = sa.make_url(fresh_url)
    dialect = dialect_for(url)
    engine = dialect.create_engine(url)
    assert upgrade(engine, dialect, target="0036") == "0036"
    with engine.begin() as conn:
        conn.execute(sa.insert(t.runs), [run_row("r1", 1, "paused"), run_row("r2", 1, "paused"),
                                          run_row("r3", 2, "succeeded")])  # fmt: skip
        conn.execute(sa.insert(t.continuations), [task_row("c1", "r1", 1, "pending", None),
                     task_row("c2", "r2", 1, "pending", "promotion")])  # fmt: skip
    assert upgrade(engine, dialect, target="0037") == "0037"
    with engine.connect() as conn:
        assert counters(conn) == {
            (1, "runs", "paused", ""): 2,
            (2, "runs", "succeeded", ""): 1,
            (1, "tasks", "pending", ""): 1,
            (1, "tasks", "pending", "promotion"): 1,
        }
    assert _triggers(engine) == {f"list_counts_{table}{event}" for table, events in (
        ("runs", ("_insert", "_delete", "_update") if dialect.name == "sqlite" else ("", "_update")),
        ("continuations", ("_insert", "_delete", "_update") if dialect.name == "sqlite" else ("", "_update")),
    ) for event in events}  # fmt: skip
    with engine.begin() as conn:  # a decision, a run resumed, one deleted (its task with it)
        k, r = t.continuations.c, t.runs.c
        conn.execute(sa.update(t.continuations).where(k.continuation_id == "c1").values(status="decided"))  # fmt: skip
        conn.execute(sa.update(t.runs).where(r.run_id == "r1").values(status="running"))
        conn.execute(sa.update(t.runs).where(r.run_id == "r1").values(version=2))  # no change
        conn.execute(sa.delete(t.runs).where(r.run_id == "r2"))
    with engine.connect() as conn:
        assert (
            counters(conn)
            == counted_rows(conn)
            == {
                (1, "runs", "running", ""): 1,
                (2, "runs", "succeeded", ""): 1,
                (1, "tasks", "decided", ""): 1,
            }
        )
    with dialect.connect_write(engine) as conn, conn.begin(), dialect.migration_lock(conn):
        command.downgrade(_alembic_config(conn), "0036")
    assert not sa.inspect(engine).has_table("list_counts")
    assert _triggers(engine) == set()
    with engine.begin() as conn:  # rows are written without the counters
        conn.execute(sa.insert(t.runs).values(run_row("r4", 1, "queued")))
    assert upgrade(engine, dialect) == "0037"
    with engine.connect() as conn:
        assert counters(conn) == counted_rows(conn)
        assert counters(conn)[(1, "runs", "queued", "")] == 1
    engine.dispose()
