"""Small helpers shared by the store tests."""

from __future__ import annotations

import multiprocessing
import re
from collections.abc import Callable
from typing import Any

import psycopg.sql
import sqlalchemy as sa

from kneo.store import Store


def new_run(store: Store, **fields: object) -> str:
    """Create a run with sensible defaults; returns its id."""
    values: dict[str, object] = {
        "target": "workflow",
        "input_text": "hello",
        "workflow_name": "wf",
        "workflow_kind": "sequential",
    }
    values.update(fields)
    with store.transaction() as tx:
        return tx.create_run(**values).run_id


def process_context() -> Any:
    """Worker processes for the multi-process tests.

    ``forkserver`` with Kneo's store preloaded: children start in milliseconds instead of
    re-importing SQLAlchemy and Alembic each (as ``spawn`` does), and unlike plain ``fork``
    they never inherit the test process's open database connections.
    """
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(
        [
            "kneo.store",
            "kneo.store.migrate",
            "alembic.command",
            "psycopg",
            "sqlalchemy.dialects.postgresql",
            "sqlalchemy.dialects.sqlite",
        ]
    )
    return ctx


def selects_run_by(store: Store, call: Callable[[], Any]) -> list[tuple[str, Any]]:
    """The SELECT statements (with their parameters) ``call`` runs on ``store``."""
    seen: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, params))

    sa.event.listen(store.engine, "before_cursor_execute", record)
    try:
        call()
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", record)
    return seen


def generic_plan(store: Store, statement: str, params: dict[str, Any]) -> list[str]:
    """PostgreSQL's generic plan of ``statement``: what a prepared statement runs once
    PostgreSQL stops planning it per call (also ``bench/inbox_search.py --explain``)."""
    names: list[str] = []

    def numbered(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    text = re.sub(r"%\((\w+)\)s", numbered, statement)
    with store.engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        cursor = raw.cursor()
        cursor.execute("SET plan_cache_mode = force_generic_plan")
        args = ", ".join(psycopg.sql.Literal(params[n]).as_string(raw) for n in names)
        cursor.execute(f"PREPARE generic_probe AS {text}")
        cursor.execute(f"EXPLAIN EXECUTE generic_probe({args})")
        plan = [str(row[0]) for row in cursor.fetchall()]
        cursor.execute("DEALLOCATE generic_probe")
        cursor.execute("RESET plan_cache_mode")
        raw.commit()
    return plan
