"""The inbox: labels on continuations, and counts that read pending requests only.

* ``continuations.workflow_name`` and ``continuations.environment``: the reviewer console
  lists pending tasks with the workflow (or, for a promotion, the bundle) and environment
  they belong to, and filters on both. Copied onto the continuation row when it is written
  (from its run, or from the promotion it asks about), a page of tasks is one indexed query
  without a join to ``runs``, and a promotion, which has no run, filters like any other
  task. Existing rows are filled from their runs and from promotion contexts.
* ``continuations (status, created_at, continuation_id)`` replaces ``(status, created_at)``:
  the inbox's keyset order in full, covering, so a page needs no sort of tied rows and a
  filtered walk no row lookups.
* ``continuation_requests``: a request row is pending only while its continuation is
  (rows of answered, expired or resolved continuations are marked resolved), and the index
  ``(assignee, status)`` becomes ``(status, assignee)``, so the pending count per assignee
  is one scan of the pending rows instead of every request ever asked, each joined to its
  continuation.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

from kneo.store.migrate import drop_columns

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_continuations_status_created_at", "continuations")
    op.create_index(
        "ix_continuations_status_created_at_continuation_id",
        "continuations",
        ["status", "created_at", "continuation_id"],
    )
    op.drop_index("ix_continuation_requests_assignee_status", "continuation_requests")
    op.create_index(
        "ix_continuation_requests_status_assignee", "continuation_requests", ["status", "assignee"]
    )
    op.execute(
        "UPDATE continuation_requests SET status = 'resolved' WHERE status = 'pending' AND "
        "continuation_id IN (SELECT continuation_id FROM continuations WHERE status != 'pending')"
    )
    op.add_column("continuations", sa.Column("workflow_name", sa.String(255), nullable=True))
    op.add_column("continuations", sa.Column("environment", sa.String(128), nullable=True))
    bind = op.get_bind()
    of_run = "FROM runs WHERE runs.run_id = continuations.run_id"
    bind.execute(
        sa.text(
            f"UPDATE continuations SET workflow_name = (SELECT workflow_name {of_run}), "
            f"environment = (SELECT environment {of_run}) WHERE run_id IS NOT NULL"
        )
    )
    promotions = bind.execute(
        sa.text(
            "SELECT continuation_id, context FROM continuations "
            "WHERE run_id IS NULL AND workflow_kind = 'promotion'"
        )
    ).all()
    for continuation_id, context in promotions:
        try:
            data = json.loads(context) if isinstance(context, str) else dict(context or {})
        except ValueError:
            continue
        bind.execute(
            sa.text(
                "UPDATE continuations SET workflow_name = :name, environment = :env "
                "WHERE continuation_id = :cid"
            ),
            {"name": data.get("bundle"), "env": data.get("environment"), "cid": continuation_id},
        )


def downgrade() -> None:
    drop_columns("continuations", "environment", "workflow_name")
    op.drop_index("ix_continuation_requests_status_assignee", "continuation_requests")
    op.create_index(
        "ix_continuation_requests_assignee_status", "continuation_requests", ["assignee", "status"]
    )
    op.drop_index("ix_continuations_status_created_at_continuation_id", "continuations")
    op.create_index("ix_continuations_status_created_at", "continuations", ["status", "created_at"])
