"""Project code, content-addressed: ``code_files``.

One row per distinct project Python file a run or a promoted bundle pins (its sha256, its
bytes), so any worker loads a run's code from the store, not from a checkout.

Revision ID: 0028
Revises: 0027
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "code_files",
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("sha256", name="pk_code_files"),
    )


def downgrade() -> None:
    op.drop_table("code_files")
