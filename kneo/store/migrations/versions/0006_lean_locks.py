"""SQLite: ``locks`` becomes a WITHOUT ROWID table.

Every run that executes takes the lock ``run:<id>`` in its first transaction and drops it in
its last, so a run wrote two ``locks`` B-trees twice: the table and the ``sqlite_autoindex``
copy of its text key. Keyed by its primary key alone, it writes one (2 of the 33 WAL frames
of a 3-step run). SQLite cannot change this in place: the table is rebuilt (create, copy,
drop, rename) inside the upgrade transaction, rows unchanged. PostgreSQL: nothing to do.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_COLUMNS = "name, owner, acquired_at, expires_at"


def _rebuild(with_rowid: bool) -> None:
    op.create_table(
        "_kneo_new_locks",
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_locks"),
        sqlite_with_rowid=with_rowid,
    )
    op.execute(f"INSERT INTO _kneo_new_locks ({_COLUMNS}) SELECT {_COLUMNS} FROM locks")
    op.drop_table("locks")
    op.rename_table("_kneo_new_locks", "locks")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild(with_rowid=False)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild(with_rowid=True)
