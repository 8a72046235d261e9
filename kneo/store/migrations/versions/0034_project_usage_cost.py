"""What model calls cost: a project's per UTC day (``project_usage.cost`` and
``cost_limit``, in nanos of the project's price table's currency) and how many of a rollout
side's finished runs had a known cost (``rollout_sums.priced``; docs/runs.md#costs).

Revision ID: 0034
Revises: 0033
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0034"
down_revision = "0033"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "project_usage", sa.Column("cost", sa.BigInteger, nullable=False, server_default="0")
    )
    op.add_column("project_usage", sa.Column("cost_limit", sa.BigInteger, nullable=True))
    op.add_column(
        "rollout_sums", sa.Column("priced", sa.BigInteger, nullable=False, server_default="0")
    )


def downgrade() -> None:
    with op.batch_alter_table("rollout_sums") as batch:
        batch.drop_column("priced")
    with op.batch_alter_table("project_usage") as batch:
        batch.drop_column("cost_limit")
        batch.drop_column("cost")
