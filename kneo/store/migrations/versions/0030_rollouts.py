"""Rollouts: ``rollouts`` and ``rollout_runs``.

One row per rollout of a bundle revision in an environment (where it stands, what it
decided), and the counters its runs move (runs, outcomes, decisions, cost, latency buckets,
spread over shards), which the rollout's analysis adds up (``kneo.store.rollouts``).

Revision ID: 0030
Revises: 0029
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0030"
down_revision = "0029"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "rollouts",
        sa.Column("rollout_id", sa.String(64), nullable=False),
        sa.Column("project_id", sa.Integer, nullable=False),
        sa.Column("bundle_name", sa.String(255), nullable=False),
        sa.Column("environment", sa.String(128), nullable=False),
        sa.Column("stable_revision", sa.Integer, nullable=False),
        sa.Column("canary_revision", sa.Integer, nullable=False),
        sa.Column("canary_digest", sa.String(128)),
        sa.Column("commit", sa.String(128)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("weight", sa.Integer, nullable=False),
        sa.Column("policy", sa.Text, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("figures", sa.Text),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("step_started_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("finished_at", TS),
        sa.Column("version", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("rollout_id", name="pk_rollouts"),
    )
    op.create_index(
        "ix_rollouts_project_id_bundle_name_environment_started_at",
        "rollouts",
        ["project_id", "bundle_name", "environment", "started_at"],
    )
    op.create_table(
        "rollout_sums",
        sa.Column("rollout_id", sa.String(64), nullable=False),
        sa.Column("track", sa.String(8), nullable=False),
        sa.Column("bucket", sa.Integer, nullable=False),
        sa.Column("shard", sa.Integer, nullable=False),
        *(
            sa.Column(name, sa.BigInteger, nullable=False)
            for name in ("runs", "finished", "failed", "decided", "rejected", "edited", "escalated")
        ),
        sa.Column("cost", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("rollout_id", "track", "bucket", "shard", name="pk_rollout_sums"),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("rollout_sums")
    op.drop_table("rollouts")
