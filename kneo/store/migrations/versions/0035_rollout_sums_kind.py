"""Decisions on a rollout's runs by the kind of human request (``rollout_sums.kind``, in the
primary key: a side's counters of ``approval`` requests apart from its ``review`` ones; ``''``
for the counters that are no request's: starts and outcomes, and decisions counted before).

Revision ID: 0035
Revises: 0034
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0035"
down_revision = "0034"
branch_labels = None
depends_on = None

_KEY = ("rollout_id", "track", "bucket", "shard")
_COUNTERS = (
    "runs", "finished", "failed", "decided", "rejected", "edited", "escalated", "cost", "priced"
)  # fmt: skip


def upgrade() -> None:
    with op.batch_alter_table("rollout_sums", recreate="always") as batch:
        batch.add_column(sa.Column("kind", sa.String(32), nullable=False, server_default=""))
        batch.drop_constraint("pk_rollout_sums", type_="primary")
        batch.create_primary_key("pk_rollout_sums", [*_KEY[:3], "kind", "shard"])


def downgrade() -> None:
    # the old key has no kind: each shard's kinds add up into its one row first
    sums = sa.table("rollout_sums", *(sa.column(n) for n in (*_KEY, *_COUNTERS)))
    conn = op.get_bind()
    folded = conn.execute(
        sa.select(
            *(sums.c[n] for n in _KEY), *(sa.func.sum(sums.c[n]) for n in _COUNTERS)
        ).group_by(*(sums.c[n] for n in _KEY))
    ).all()
    conn.execute(sa.delete(sums))
    with op.batch_alter_table("rollout_sums", recreate="always") as batch:
        batch.drop_constraint("pk_rollout_sums", type_="primary")
        batch.drop_column("kind")
        batch.create_primary_key("pk_rollout_sums", list(_KEY))
    if folded:
        names = (*_KEY, *_COUNTERS)
        conn.execute(sa.insert(sums), [dict(zip(names, row, strict=True)) for row in folded])
