"""A fresh SQLite database made at the schema's head in one transaction, not by replaying
every migration script.

Replaying 35 scripts (table rebuilds included) takes 0.7-2.8 s; every new SQLite store pays
it, from a user's first ``kneo run`` to each test that opens one. The head's DDL, read with
:func:`schema_of` from a database the scripts built, is committed as
``migrations/head_sqlite.json`` (``python scripts/build_sqlite_head.py``; a test keeps it
equal to what the scripts make). :func:`create_at_head` replays it, with the rows the
migrations seed (the default project and the recorded revision), under the caller's
migration lock, and only into a database with no table at all and only when the file is of
this code's head: otherwise the scripts run as before. PostgreSQL always runs the scripts
(its tests copy a template database instead).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from kneo.projects import DEFAULT_PROJECT, DEFAULT_PROJECT_ID
from kneo.store import tables as t

__all__ = ["HEAD_SQLITE", "create_at_head", "schema_of"]

#: The committed DDL of the head, for SQLite.
HEAD_SQLITE = Path(__file__).parent / "migrations" / "head_sqlite.json"


def schema_of(conn: Connection) -> list[str]:
    """A SQLite database's DDL in the order it was made (implicit indexes left out: their
    tables' constraints make them)."""
    query = (
        "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' "
        "ORDER BY rowid"
    )
    return [str(row[0]) for row in conn.exec_driver_sql(query)]


def create_at_head(conn: Connection, head: str, version_table: str) -> bool:
    """Make an empty SQLite database ``head`` from the committed DDL, in ``conn``'s
    transaction; ``False`` (nothing done) when the database is not SQLite, holds a table, or
    the committed DDL is of another revision."""
    if conn.dialect.name != "sqlite" or sa.inspect(conn).get_table_names():
        return False
    committed: dict[str, Any] = json.loads(HEAD_SQLITE.read_text(encoding="utf-8"))
    if committed["revision"] != head:
        return False
    for statement in committed["statements"]:
        conn.exec_driver_sql(statement)
    now = datetime.now(UTC)
    conn.execute(
        sa.insert(t.projects).values(
            id=DEFAULT_PROJECT_ID,
            name=DEFAULT_PROJECT,
            status="active",
            definition=None,
            created_at=now,
            updated_at=now,
        )
    )
    conn.exec_driver_sql(f"INSERT INTO {version_table} (version_num) VALUES (?)", (head,))
    return True
