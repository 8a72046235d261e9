"""`kneo db doctor` on real PostgreSQL and SQLite: a healthy database passes; each problem
(autovacuum off for a table, stale statistics, a missing index, a pending migration, no
connection headroom) is named with a fix, and running that fix clears it."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from kneo.cli.main import app
from kneo.cli.output import run_cli
from kneo.store import open_store
from kneo.store.maintenance.doctor import Finding, diagnose, headroom


def _by_check(findings: list[Finding]) -> dict[str, Finding]:
    return {f.check: f for f in findings}


def _kneo(monkeypatch: pytest.MonkeyPatch, capsys: Any, *args: str) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["kneo", *args])
    code = run_cli(app)
    return code, capsys.readouterr().out


def _run(engine: sa.Engine, sql: str) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for statement in filter(None, (part.strip() for part in sql.split(";"))):
            conn.exec_driver_sql(statement)


def _until(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)
    return found


def test_postgresql_problems_are_named_with_fixes_that_clear_them(
    pg_database: Callable[[], str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = pg_database()
    store = open_store(url)
    engine = store.engine
    try:
        found = _by_check(diagnose(store))
        with engine.connect() as conn:
            autovacuum = conn.exec_driver_sql("SHOW autovacuum").scalar()
        assert found["autovacuum"].status == ("ok" if autovacuum == "on" else "fail")
        assert {k: f.status for k, f in found.items() if k != "autovacuum"} == {
            "migrations": "ok",
            "statistics": "ok",
            "indexes": "ok",
            "connections": "ok",
        }
        assert "max_connections" in found["connections"].detail

        # a table with autovacuum off that took 3,000 rows since its last ANALYZE
        _run(
            engine,
            "ALTER TABLE notification_events SET (autovacuum_enabled = false);"
            "INSERT INTO notification_events (event_id, event_type, severity, payload, routed,"
            " created_at) SELECT 'e' || i, 'run.failed', 'error', '{}', true, now()"
            " FROM generate_series(1, 3000) i",
        )
        stale = _until(lambda: _by_check(diagnose(store))["statistics"].status == "warn")
        found = _by_check(diagnose(store))
        assert stale and "notification_events (3,000 rows changed" in found["statistics"].detail
        tables = found["autovacuum (tables)"]
        assert tables.status == "fail" and "notification_events" in tables.detail
        assert found["statistics"].fix == "ANALYZE notification_events;"
        _run(engine, found["statistics"].fix + tables.fix)
        found = _by_check(diagnose(store))
        assert found["statistics"].status == "ok" and "autovacuum (tables)" not in found

        # a missing index: named, and its CREATE INDEX puts it back
        _run(engine, "DROP INDEX ix_notifications_receiver_task_id")
        code, out = _kneo(monkeypatch, capsys, "db", "doctor", "--database-url", url)
        assert code == 1
        assert "FAIL  indexes: missing: ix_notifications_receiver_task_id" in out
        assert "fix: CREATE INDEX ix_notifications_receiver_task_id ON notifications" in out
        _run(engine, _by_check(diagnose(store))["indexes"].fix)
        assert _by_check(diagnose(store))["indexes"].status == "ok"

        # a database behind this version's schema
        _run(engine, "UPDATE schema_migrations SET version_num = '0015'")
        code, out = _kneo(monkeypatch, capsys, "db", "doctor", "--json", "--database-url", url)
        result = json.loads(out)
        migrations = result["checks"][0]
        assert code == 1 and result["healthy"] is False
        assert migrations["status"] == "fail" and "pending: 0016" in migrations["detail"]
        assert "kneo db upgrade" in migrations["fix"]
    finally:
        store.close()


def test_connection_headroom_from_the_numbers() -> None:
    assert headroom(100, 3, 10, 15).status == "ok"
    assert "5 more fit" in headroom(100, 3, 10, 15).detail
    short = headroom(100, 3, 85, 15)  # 12 free: not one more process
    assert short.status == "warn" and "PgBouncer" in short.fix
    assert headroom(100, 3, 97, 15).status == "fail"


def test_sqlite_checks_migrations_and_journal_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'kneo.sqlite'}"
    open_store(url, migrate=False).close()  # an empty database
    code, out = _kneo(monkeypatch, capsys, "db", "doctor", "--database-url", url)
    assert code == 1 and "FAIL  migrations: at revision none" in out
    assert "fix: kneo db upgrade" in out
    open_store(url).close()
    code, out = _kneo(monkeypatch, capsys, "db", "doctor", "--json", "--database-url", url)
    result = json.loads(out)
    assert code == 0 and result["healthy"] is True
    assert [(c["check"], c["status"]) for c in result["checks"]] == [
        ("migrations", "ok"),
        ("journal mode", "ok"),
    ]
