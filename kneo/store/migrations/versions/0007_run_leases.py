"""The executing process's lease moves from ``locks`` onto the run row.

An executing run held the named lock ``run:<id>``: a row inserted in the run's first
transaction and deleted in its last, two statements and two B-tree pages per run on top of
the run row those transactions write anyway. The lease is now two columns of ``runs``
(``lease_owner``, ``lease_expires_at``), set by the insert or update that starts the run and
cleared by the update that ends it. Held ``run:<id>`` locks are carried over; other named
locks stay in ``locks``. The downgrade puts held leases back as locks.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from kneo.store.migrate import drop_columns

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_PREFIX = "run:"


def upgrade() -> None:
    op.add_column("runs", sa.Column("lease_owner", sa.String(255), nullable=True))
    op.add_column("runs", sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))
    held = "FROM locks WHERE locks.name = :prefix || runs.run_id"
    op.get_bind().execute(
        sa.text(
            f"UPDATE runs SET lease_owner = (SELECT owner {held}), "
            f"lease_expires_at = (SELECT expires_at {held}) WHERE EXISTS (SELECT 1 {held})"
        ),
        {"prefix": _PREFIX},
    )
    op.get_bind().execute(
        sa.text("DELETE FROM locks WHERE substr(name, 1, 4) = :prefix"), {"prefix": _PREFIX}
    )


def downgrade() -> None:
    op.get_bind().execute(
        sa.text(
            "INSERT INTO locks (name, owner, acquired_at, expires_at) "
            "SELECT :prefix || run_id, lease_owner, updated_at, lease_expires_at FROM runs "
            "WHERE lease_owner IS NOT NULL"
        ),
        {"prefix": _PREFIX},
    )
    drop_columns("runs", "lease_expires_at", "lease_owner")
