"""Inbox filters by environment and by workflow, each by an index carrying the inbox's order.

``(status, environment, created_at, continuation_id)`` and ``(status, workflow_name,
created_at, continuation_id)``: a page of one environment's or one workflow's pending tasks
walks its own rows in the inbox's keyset order, so a rare value costs what a common one does
(without them the walk went through every pending task, skipping the others).

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-24
"""

from __future__ import annotations

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

ORDER = ["created_at", "continuation_id"]


def upgrade() -> None:
    op.create_index(
        "ix_continuations_status_environment_created_at",
        "continuations",
        ["status", "environment", *ORDER],
    )
    op.create_index(
        "ix_continuations_status_workflow_name_created_at",
        "continuations",
        ["status", "workflow_name", *ORDER],
    )


def downgrade() -> None:
    op.drop_index("ix_continuations_status_workflow_name_created_at", "continuations")
    op.drop_index("ix_continuations_status_environment_created_at", "continuations")
