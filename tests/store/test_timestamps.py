"""Timestamps: integer microseconds on SQLite (migration 0005 converts the old ISO text)."""

from __future__ import annotations

import importlib
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import sqlalchemy as sa

from kneo.errors import NotReady
from kneo.store import Store, open_store
from kneo.store import tables as t
from kneo.store.migrate import _alembic_config, current_revision, upgrade
from kneo.store.wire.dialects import dialect_for

from .conftest import sqlite_timestamp_kinds

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: the column type SQLAlchemy used on SQLite before 0005 (naive UTC in, ISO text stored)
OLD_TS = sa.DateTime()


def _migration() -> ModuleType:
    return importlib.import_module("kneo.store.migrations.versions.0005_integer_timestamps")


def _micros(value: datetime) -> int:
    return (value - EPOCH) // timedelta(microseconds=1)


def _engine_at(tmp_path: Path, revision: str) -> tuple[sa.Engine, sa.URL]:
    url = sa.make_url(f"sqlite:///{tmp_path / 'old.sqlite'}")
    engine = dialect_for(url).create_engine(url)
    assert upgrade(engine, dialect_for(url), target=revision) == revision
    return engine, url


def _downgrade(engine: sa.Engine, url: sa.URL, target: str) -> None:
    from alembic import command

    dialect = dialect_for(url)
    with dialect.connect_write(engine) as conn, conn.begin(), dialect.migration_lock(conn):
        command.downgrade(_alembic_config(conn), target)


#: Columns later migrations added (not there at 0004): table -> names.
LATER_COLUMNS = {
    "runs": {"lease_owner", "lease_expires_at", "session_id", "project_id"},  # 0007, 0023, 0026
    "audit_events": {"project_id"},  # 0026
    "run_terms": {"created_at"},  # 0023
    # 0010, 0012: tables created after 0005
    "controller_requests": {"requested_at", "started_at", "finished_at"},
    "notification_events": {"created_at"},
    "notifications": {
        "available_at",
        "lease_expires_at",
        "created_at",
        "updated_at",
        "sent_at",
    },
    "continuation_terms": {"created_at"},  # 0013
    "bundle_pins": {"created_at"},  # 0014
    "blocked_digests": {"created_at"},  # 0014
    "console_sessions": {"created_at", "expires_at", "ended_at"},  # 0015
    "seen_callbacks": {"expires_at"},  # 0024
    "a2a_push_configs": {"created_at", "updated_at"},  # 0025
    "projects": {"created_at", "updated_at"},  # 0026
    "project_usage": {"updated_at"},  # 0027
    "code_files": {"created_at"},  # 0028
    "schedule_states": {"last_tick", "updated_at"},  # 0029
    "schedule_ticks": {"tick_at", "created_at", "updated_at"},  # 0029
    "trigger_events": {"created_at"},  # 0029
    "rollouts": {"started_at", "step_started_at", "updated_at", "finished_at"},  # 0030
    "rollout_judgements": {"judged_at"},  # 0036
}


def _old_table(name: str) -> sa.TableClause:
    """``name`` as at 0004: its timestamp columns typed as before 0005, the rest untyped."""
    return sa.table(
        name,
        *(
            sa.column(c.name, OLD_TS if isinstance(c.type, t.UTCDateTime) else None)
            for c in t.metadata.tables[name].c
            if c.name not in LATER_COLUMNS.get(name, ())
        ),
    )


def _values() -> list[datetime]:
    """Edge cases plus random instants from 1900 to 2200, all at microsecond precision."""
    rng = random.Random(5)
    edges = [
        datetime(2026, 11, 21, 13, 46, 10, 947832, tzinfo=UTC),
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2026, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
        datetime(2026, 1, 1, 0, 0, 0, 999999, tzinfo=UTC),
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(1900, 3, 1, 0, 0, 0, 500000, tzinfo=UTC),
        datetime(2199, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ]
    span = _micros(datetime(2200, 1, 1, tzinfo=UTC)) - _micros(datetime(1900, 1, 1, tzinfo=UTC))
    start = datetime(1900, 1, 1, tzinfo=UTC)
    return edges + [start + timedelta(microseconds=rng.randrange(span)) for _ in range(300)]


def test_migration_lists_every_timestamp_column() -> None:
    """0005 converts exactly the UTCDateTime columns of kneo.store.tables (but those added
    by later migrations, which never held text)."""
    expected = {
        table.name: tuple(
            c.name
            for c in table.c
            if isinstance(c.type, t.UTCDateTime) and c.name not in LATER_COLUMNS.get(table.name, ())
        )
        for table in t.metadata.sorted_tables
    }
    frozen = _migration().TIMESTAMPS
    assert frozen == {k: v for k, v in expected.items() if v}


def test_0005_converts_text_exactly_and_downgrade_restores_it(tmp_path: Path) -> None:
    """Text written before 0005 (with and without the fraction) becomes the exact integer
    microseconds, reads back as the same aware datetime, sorts the same way, and downgrade
    writes SQLAlchemy's text again."""
    engine, url = _engine_at(tmp_path, "0004")
    values = _values()
    audit = _old_table("audit_events")
    runs = _old_table("runs")
    bare = datetime(2025, 6, 7, 8, 9, 10, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(
            sa.insert(audit),
            [
                {"event_id": f"e{n}", "event_type": "x", "payload": "{}", "created_at": v}
                for n, v in enumerate(v.replace(tzinfo=None) for v in values)
            ],
        )
        row: dict[str, Any] = {
            "run_id": "run_old",
            "status": "paused",
            "target": "workflow",
            "input_text": "kept",
            "spec": "{}",
            "state": "{}",
            "version": 1,
            "cancel_requested": False,
            "metadata": "{}",
            "checkpoint_seq": 0,
            "trace_seq": 0,
            "deadline_at": values[0].replace(tzinfo=None),
            "created_at": values[1].replace(tzinfo=None),
            "updated_at": values[2].replace(tzinfo=None),
            "started_at": None,
            "finished_at": None,
        }
        conn.execute(sa.insert(runs).values(row))
        # CURRENT_TIMESTAMP and sqlite3's own adapter leave out a zero fraction.
        conn.execute(sa.text("UPDATE runs SET started_at = '2025-06-07 08:09:10'"))
        before = conn.execute(sa.text("SELECT created_at FROM audit_events ORDER BY id")).all()
    assert before[0][0] == "2026-11-21 13:46:10.947832"  # what 0004 stored: 26-char text
    engine.dispose()

    store = open_store(str(url))
    with store.engine.connect() as conn:
        stored = conn.execute(
            sa.text("SELECT typeof(created_at), created_at FROM audit_events ORDER BY id")
        ).all()
        assert stored == [("integer", _micros(v)) for v in values]
        a = t.audit_events.c
        read = conn.execute(sa.select(a.created_at).order_by(a.id)).scalars().all()
        assert read == values
        ordered = conn.execute(sa.select(a.created_at).order_by(a.created_at)).scalars().all()
        assert ordered == sorted(values)
    run = store.runs.get_run("run_old")
    assert (run.deadline_at, run.created_at, run.updated_at) == tuple(values[:3])
    assert (run.started_at, run.finished_at) == (bare, None)
    store.close()

    _downgrade(engine, url, "0004")
    with engine.connect() as conn:
        assert current_revision(conn) == "0004"
        after = conn.execute(sa.text("SELECT created_at FROM audit_events ORDER BY id")).all()
        assert after == before
        old = conn.execute(sa.select(runs).where(runs.c.run_id == "run_old")).one()._mapping
        assert old["started_at"] == bare.replace(tzinfo=None)  # now with ".000000"
        assert [old[c] for c in ("deadline_at", "created_at", "updated_at", "finished_at")] == [
            v.replace(tzinfo=None) for v in values[:3]
        ] + [None]
    engine.dispose()


@pytest.mark.parametrize(
    "text",
    ["2026-01-01T00:00:00+02:00", "yesterday", "2026-13-45 00:00:00", "2026-01-01 00:00:00.1x"],
    ids=["offset", "words", "no-such-date", "bad-fraction"],
)
def test_0005_refuses_text_it_cannot_convert(tmp_path: Path, text: str) -> None:
    """A value in an unknown shape stops the upgrade; the database stays at 0004, unchanged."""
    engine, url = _engine_at(tmp_path, "0004")
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO locks (name, owner, acquired_at, expires_at) "
                "VALUES ('a', 'o', '2026-01-01 00:00:00.000000', :bad)"
            ),
            {"bad": text},
        )
    engine.dispose()
    with pytest.raises(NotReady, match=r"locks\.expires_at") as err:
        open_store(str(url))
    assert err.value.code == "migration_failed"
    with engine.connect() as conn:
        assert current_revision(conn) == "0004"
        assert conn.execute(sa.text("SELECT acquired_at, expires_at FROM locks")).one() == (
            "2026-01-01 00:00:00.000000",
            text,
        )
    engine.dispose()


def test_sqlite_stores_integers(make_store: Any, backend: str) -> None:
    """Timestamps the store writes are SQLite integers (and timestamptz on PostgreSQL)."""
    store: Store = make_store()
    with store.transaction() as tx:
        tx.create_run(run_id="run_1", target="workflow", input_text="x")
    run = store.runs.get_run("run_1")
    assert run.created_at.tzinfo is UTC
    if backend == "sqlite":
        assert sqlite_timestamp_kinds(store.engine) <= {"integer", "null"}
        with store.engine.connect() as conn:
            raw = conn.execute(sa.text("SELECT created_at FROM runs")).scalar_one()
        assert raw == _micros(run.created_at)
    else:
        with store.engine.connect() as conn:
            kind = conn.execute(sa.text("SELECT pg_typeof(created_at)::text FROM runs")).scalar()
        assert kind == "timestamp with time zone"
