"""Schedules and triggers: ``schedule_states``, ``schedule_ticks`` and ``trigger_events``.

One row per tick a schedule fired (its primary key claims the tick once across replicas),
and per schedule the last tick considered and whether it is paused.

Revision ID: 0029
Revises: 0028
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
KEY = ("project_id", "bundle_name", "environment", "schedule")


def _key() -> list[sa.Column[object]]:
    return [
        sa.Column("project_id", sa.Integer, nullable=False, server_default=sa.text("1")),
        sa.Column("bundle_name", sa.String(255), nullable=False),
        sa.Column("environment", sa.String(128), nullable=False),
        sa.Column("schedule", sa.String(128), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "schedule_states",
        *_key(),
        sa.Column("last_tick", TS),
        sa.Column("paused", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("paused_by", sa.String(255)),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint(*KEY, name="pk_schedule_states"),
    )
    op.create_table(
        "schedule_ticks",
        *_key(),
        sa.Column("tick_at", TS, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("run_id", sa.String(128)),
        sa.Column("detail", sa.String(500)),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint(*KEY, "tick_at", name="pk_schedule_ticks"),
    )
    op.create_index("ix_schedule_ticks_status", "schedule_ticks", ["project_id", "status"])
    op.create_table(
        "trigger_events",
        sa.Column("project_id", sa.Integer, nullable=False, server_default=sa.text("1")),
        sa.Column("bundle_name", sa.String(255), nullable=False),
        sa.Column("environment", sa.String(128), nullable=False),
        sa.Column("trigger", sa.String(128), nullable=False),
        sa.Column("event_key", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("run_id", sa.String(128)),
        sa.Column("detail", sa.String(500)),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint(
            "project_id", "bundle_name", "environment", "trigger", "event_key",
            name="pk_trigger_events",
        ),
    )  # fmt: skip


def downgrade() -> None:
    op.drop_table("trigger_events")
    op.drop_index("ix_schedule_ticks_status", table_name="schedule_ticks")
    op.drop_table("schedule_ticks")
    op.drop_table("schedule_states")
