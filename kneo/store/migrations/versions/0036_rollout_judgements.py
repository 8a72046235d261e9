"""A model judge's verdicts on a rollout's sampled runs: ``rollout_judgements`` (one row per
rollout and run: a run is judged once), which the rollout's analysis counts per side.

Revision ID: 0036
Revises: 0035
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0036"
down_revision = "0035"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rollout_judgements",
        sa.Column("rollout_id", sa.String(64), nullable=False),
        sa.Column("run_id", sa.String(128), nullable=False),
        sa.Column("project_id", sa.Integer, nullable=False),
        sa.Column("track", sa.String(8), nullable=False),
        sa.Column("passed", sa.Boolean, nullable=False),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("judged_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("rollout_id", "run_id", name="pk_rollout_judgements"),
    )


def downgrade() -> None:
    op.drop_table("rollout_judgements")
