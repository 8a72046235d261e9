"""A step boundary's rows without a foreign key: ``checkpoints`` and ``trace_events`` no
longer reference ``runs``.

Every checkpoint and trace event is written by the statement that compare-and-sets its run
(``INSERT ... SELECT FROM cas``: no row when the run is not there), and retention deletes a
run's rows before the run, so the key checked nothing a write could get wrong. It cost a
trigger per row: on PostgreSQL a ``SELECT 1 FROM runs ... FOR KEY SHARE`` each (34 of a
10-step run's 46 statements, about 40 % of the buffers a step reads, since each walked the
versions of a run row the same transaction had just rewritten); on SQLite a parent lookup per
row. PostgreSQL drops the constraints in place; SQLite rebuilds both tables (create, copy,
drop, rename, rows unchanged, still WITHOUT ROWID) inside the upgrade transaction.

Revision ID: 0022
Revises: 0021
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.schema import SchemaItem

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
_KEYS = {"checkpoints": "fk_checkpoints_run_id_runs", "trace_events": "fk_trace_events_run_id_runs"}


def _columns(table: str) -> list[SchemaItem]:
    if table == "checkpoints":
        return [
            sa.Column("run_id", sa.String(128), nullable=False),
            sa.Column("sequence", sa.Integer, nullable=False),
            sa.Column("type", sa.String(64), nullable=False),
            sa.Column("step_id", sa.String(255)),
            sa.Column("status", sa.String(32)),
            sa.Column("encoding", sa.String(16), nullable=False),
            sa.Column("payload", sa.LargeBinary, nullable=False),
            sa.Column("size_bytes", sa.Integer, nullable=False),
            sa.Column("truncated", sa.Boolean, nullable=False),
            sa.Column("metadata", sa.Text, nullable=False),
            sa.Column("created_at", TS, nullable=False),
        ]
    return [
        sa.Column("run_id", sa.String(128), nullable=False),
        sa.Column("sequence", sa.Integer, nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("step_id", sa.String(255)),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    ]


def _rebuild(table: str, keyed: bool) -> None:
    """SQLite: recreate ``table`` WITHOUT ROWID, with or without its key to ``runs``."""
    items = _columns(table)
    names = ", ".join(c.name for c in items if isinstance(c, sa.Column))
    items.append(sa.PrimaryKeyConstraint("run_id", "sequence", name=f"pk_{table}"))
    if keyed:
        items.append(
            sa.ForeignKeyConstraint(
                ["run_id"], ["runs.run_id"], ondelete="CASCADE", name=_KEYS[table]
            )
        )
    scratch = f"_kneo_new_{table}"
    op.create_table(scratch, *items, sqlite_with_rowid=False)
    op.execute(f"INSERT INTO {scratch} ({names}) SELECT {names} FROM {table}")
    op.drop_table(table)
    op.rename_table(scratch, table)


def upgrade() -> None:
    for table, key in _KEYS.items():
        if op.get_bind().dialect.name == "sqlite":
            _rebuild(table, keyed=False)
        else:
            op.drop_constraint(key, table, type_="foreignkey")


def downgrade() -> None:
    for table, key in _KEYS.items():
        if op.get_bind().dialect.name == "sqlite":
            _rebuild(table, keyed=True)
        else:
            op.create_foreign_key(key, table, "runs", ["run_id"], ["run_id"], ondelete="CASCADE")
