"""A2A push notification configs: ``a2a_push_configs``.

One row per push config an A2A client set on a task (a run) through ``kneo service serve
--a2a``: the owner (the caller who set it), the URL's origin, the authentication scheme,
the URL, token and credentials sealed (never in clear), and what was pushed last (``pushed_status``,
``pushed_seq``, ``done``). Each change of the run's status is one outbox event, written
under a compare-and-set on ``pushed_seq``; ``(done, run_id)`` is the sweep's walk of the
configs still to follow.

Revision ID: 0025
Revises: 0024
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "a2a_push_configs",
        sa.Column("push_id", sa.String(64), nullable=False),
        sa.Column("run_id", sa.String(128), nullable=False),
        sa.Column("config_id", sa.String(128), nullable=False),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("origin", sa.String(512), nullable=False),
        sa.Column("auth_scheme", sa.String(64)),
        sa.Column("sealed", sa.Text, nullable=False),
        sa.Column("sees_requests", sa.Boolean, nullable=False),
        sa.Column("pushed_status", sa.String(32)),
        sa.Column("pushed_seq", sa.Integer, nullable=False),
        sa.Column("done", sa.Boolean, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("push_id", name="pk_a2a_push_configs"),
        sa.UniqueConstraint(
            "run_id", "owner", "config_id", name="uq_a2a_push_configs_run_id_owner_config_id"
        ),
    )
    op.create_index("ix_a2a_push_configs_done_run_id", "a2a_push_configs", ["done", "run_id"])


def downgrade() -> None:
    op.drop_table("a2a_push_configs")
