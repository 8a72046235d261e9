"""Schema migrations: Alembic scripts packaged in ``kneo/store/migrations``, applied on open.

Opening a store checks the recorded revision with one cheap query and imports Alembic only
when an upgrade is due, so a short-lived CLI process pays nothing for migrations. Upgrades
run inside one transaction holding a cross-process lock (SQLite ``BEGIN IMMEDIATE``,
PostgreSQL ``pg_advisory_xact_lock``): when several processes start at once, one upgrades
and the others wait, then find the schema current.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from kneo.errors import ErrorCode, KneoError, NotReady
from kneo.store.head_schema import create_at_head
from kneo.store.wire.dialects import StoreDialect

#: Alembic's version table; the name the reference documents.
VERSION_TABLE = "schema_migrations"
#: The newest revision shipped; a test keeps it equal to the scripts' head.
HEAD_REVISION = "0037"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def drop_columns(table: str, *columns: str) -> None:
    """Drop ``columns`` of ``table`` inside a migration, in place on SQLite too.

    Alembic's SQLite batch mode rebuilds the table, and dropping the old one with foreign
    keys on deletes its rows first, cascading to every child row: for ``runs``, each run's
    checkpoints, trace events and continuations would be lost. SQLite drops a column in place
    since 3.35; an older SQLite is refused (the whole migration rolls back) rather than lose
    rows."""
    import sqlite3

    from alembic import op

    if op.get_bind().dialect.name == "sqlite" and sqlite3.sqlite_version_info < (3, 35, 0):
        raise RuntimeError(
            f"dropping {table} columns needs SQLite 3.35 or newer "
            f"(this Python has {sqlite3.sqlite_version}); nothing was changed"
        )
    for column in columns:
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")


def current_revision(conn: Connection) -> str | None:
    """The revision recorded in the database, or ``None`` for an empty database."""
    if not sa.inspect(conn).has_table(VERSION_TABLE):
        return None
    row = conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).first()
    return None if row is None else str(row[0])


#: ``progress(revision)`` after each migration script has run (``kneo db upgrade`` shows it).
MigrationProgress = Callable[[str], None]


def _alembic_config(conn: Connection, progress: MigrationProgress | None = None) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = conn
    config.attributes["progress"] = progress
    return config


def _scripts() -> Any:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return ScriptDirectory.from_config(config)


def script_head() -> str:
    """The head revision according to the migration scripts themselves."""
    head = _scripts().get_current_head()
    assert head is not None
    return str(head)


def pending_revisions(current: str | None) -> list[tuple[str, str]]:
    """``(revision, first line of its doc)`` of each script an upgrade from ``current`` to head
    runs, in order."""
    pending = _scripts().iterate_revisions("heads", current or "base")
    return [(s.revision, (s.doc or "").strip().splitlines()[0]) for s in reversed(list(pending))]


def upgrade(
    engine: Engine,
    dialect: StoreDialect,
    target: str = "head",
    progress: MigrationProgress | None = None,
    *,
    replay: bool = False,
) -> str | None:
    """Upgrade to ``target`` under the migration lock; returns the revision now recorded.
    An empty SQLite database is made at head from its committed DDL
    (:mod:`kneo.store.head_schema`) unless ``replay`` asks for every script."""
    try:
        with (
            dialect.connect_write(engine) as conn,
            conn.begin(),
            dialect.migration_lock(conn),
        ):
            current = current_revision(conn)
            if target == "head" and current == HEAD_REVISION:
                return current
            if (
                target == "head"
                and current is None
                and not replay
                and create_at_head(conn, HEAD_REVISION, VERSION_TABLE)
            ):
                if progress is not None:
                    progress(HEAD_REVISION)
                return HEAD_REVISION
            from alembic import command  # 0.3 s of imports, only when a script runs

            command.upgrade(_alembic_config(conn, progress), target)
            if conn.dialect.name == "postgresql":
                # plans come from statistics: none made for the tables as they were before
                conn.execute(sa.text("ANALYZE"))
            return current_revision(conn)
    except KneoError:
        raise
    except Exception as exc:
        raise NotReady(
            f"database migration failed: {type(exc).__name__}: {exc}",
            code=ErrorCode.migration_failed,
        ) from exc


def ensure_schema(engine: Engine, dialect: StoreDialect) -> None:
    """Bring the schema to head if needed; a newer schema than this code is refused."""
    with engine.connect() as conn:
        current = current_revision(conn)
        conn.rollback()
    if current == HEAD_REVISION:
        return
    if current is not None and not _is_known(current):
        raise NotReady(
            f"database schema revision {current!r} is newer than this Kneo ({HEAD_REVISION}); "
            "upgrade Kneo",
            code=ErrorCode.schema_too_new,
        )
    upgrade(engine, dialect)


def _is_known(revision: str) -> bool:
    return any(
        p.name.startswith(f"{revision}_") for p in (MIGRATIONS_DIR / "versions").glob("*.py")
    )
