"""SQLite timestamps as integer microseconds since the Unix epoch (UTC) instead of ISO text.

* SQLite: every timestamp value SQLAlchemy wrote as text (``YYYY-MM-DD HH:MM:SS.ffffff``, or
  without the fraction as ``CURRENT_TIMESTAMP`` and sqlite3's default adapter write it)
  becomes an integer, computed exactly (whole seconds from ``strftime('%s')`` plus the
  fraction's digits; no floating-point ``julianday``). The columns stay declared
  ``DATETIME`` (NUMERIC affinity), so integers are stored as integers without rebuilding a
  table. A text value in any other shape stops the upgrade (nothing is changed) rather than
  being guessed at. Downgrade writes the integers back as SQLAlchemy's text.
* PostgreSQL: nothing to do; ``timestamptz`` stays as it is.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Callable

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

#: Every timestamp column at revision 0004 (a frozen copy: tables.py may change later).
TIMESTAMPS: dict[str, tuple[str, ...]] = {
    "runs": ("deadline_at", "created_at", "updated_at", "started_at", "finished_at"),
    "specs": ("created_at",),
    "checkpoints": ("created_at",),
    "trace_events": ("created_at",),
    "continuations": ("expires_at", "escalated_at", "created_at", "updated_at"),
    "audit_events": ("created_at",),
    "queue": ("lease_expires_at", "available_at", "created_at", "updated_at", "finished_at"),
    "idempotency_records": ("created_at", "updated_at"),
    "locks": ("acquired_at", "expires_at"),
    "project_metadata": ("updated_at",),
    "bundle_revisions": ("created_at", "activated_at", "deactivated_at"),
    "bundle_conditions": ("last_transition_time", "updated_at"),
    "bundle_suspensions": ("created_at",),
    "controller_status": ("last_reconcile_started_at", "updated_at"),
    "promotion_approvals": ("created_at",),
}

_SECONDS = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9][ T][0-9][0-9]:[0-9][0-9]:[0-9][0-9]"


def _is_iso(column: str) -> str:
    """SQL: ``column`` is text in a shape :func:`_to_micros` converts exactly."""
    return (
        f"({column} GLOB '{_SECONDS}' OR ({column} GLOB '{_SECONDS}.[0-9]*' "
        f"AND length({column}) <= 26 AND NOT substr({column}, 21) GLOB '*[^0-9]*')) "
        f"AND strftime('%s', substr({column}, 1, 19)) IS NOT NULL"
    )


def _to_micros(column: str) -> str:
    """SQL: ISO text to integer microseconds; the fraction right-padded to six digits."""
    return (
        f"(CAST(strftime('%s', substr({column}, 1, 19)) AS INTEGER) * 1000000 "
        f"+ CAST(substr(substr({column}, 21) || '000000', 1, 6) AS INTEGER))"
    )


def _to_text(column: str) -> str:
    """SQL: integer microseconds to SQLAlchemy's SQLite text, flooring before 1970 too."""
    fraction = f"(({column} % 1000000) + 1000000) % 1000000"
    return (
        f"(strftime('%Y-%m-%d %H:%M:%S', ({column} - {fraction}) / 1000000, 'unixepoch') "
        f"|| printf('.%06d', {fraction}))"
    )


def _convert(table: str, columns: tuple[str, ...], kind: str, to: Callable[[str], str]) -> None:
    """One ``UPDATE`` per table rewriting the ``kind`` values of ``columns`` with ``to``."""
    sets = ", ".join(
        f"{c} = CASE WHEN typeof({c}) = '{kind}' THEN {to(c)} ELSE {c} END" for c in columns
    )
    where = " OR ".join(f"typeof({c}) = '{kind}'" for c in columns)
    op.get_bind().exec_driver_sql(f"UPDATE {table} SET {sets} WHERE {where}")


def _refuse_unknown_text(table: str, column: str) -> None:
    bad = (
        op.get_bind()
        .exec_driver_sql(
            f"SELECT {column} FROM {table} "
            f"WHERE typeof({column}) = 'text' AND NOT ({_is_iso(column)}) LIMIT 1"
        )
        .first()
    )
    if bad is not None:
        raise ValueError(f"{table}.{column} holds {bad[0]!r}, not a timestamp 0005 can convert")


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table, columns in TIMESTAMPS.items():
        for column in columns:
            _refuse_unknown_text(table, column)
    for table, columns in TIMESTAMPS.items():
        _convert(table, columns, "text", _to_micros)


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table, columns in TIMESTAMPS.items():
        _convert(table, columns, "integer", _to_text)
