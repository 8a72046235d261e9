"""Core run state: runs, checkpoints, trace events, continuations, audit, queue, idempotency,
locks and project metadata.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(128), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("target", sa.String(32), nullable=False),
        sa.Column("workflow_name", sa.String(255)),
        sa.Column("workflow_kind", sa.String(64)),
        sa.Column("agent_name", sa.String(255)),
        sa.Column("input_text", sa.Text, nullable=False),
        sa.Column("output_text", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("environment", sa.String(128)),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("spec_digest", sa.String(128)),
        sa.Column("bundle_name", sa.String(255)),
        sa.Column("bundle_revision", sa.Integer),
        sa.Column("bundle_commit", sa.String(128)),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("cancel_requested", sa.Boolean, nullable=False),
        sa.Column("deadline_at", TS),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("started_at", TS),
        sa.Column("finished_at", TS),
        sa.Column("metadata", sa.Text, nullable=False),
        sa.Column("checkpoint_seq", sa.Integer, nullable=False),
        sa.Column("trace_seq", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("run_id", name="pk_runs"),
    )
    op.create_index("ix_runs_status_created_at", "runs", ["status", "created_at"])
    op.create_index("ix_runs_created_at", "runs", ["created_at"])
    op.create_index("ix_runs_updated_at", "runs", ["updated_at"])

    op.create_table(
        "checkpoints",
        sa.Column("run_id", sa.String(128), nullable=False),
        sa.Column("sequence", sa.Integer, nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("step_id", sa.String(255)),
        sa.Column("status", sa.String(32)),
        sa.Column("encoding", sa.String(16), nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("size_bytes", sa.Integer, nullable=False),
        sa.Column("truncated", sa.Boolean, nullable=False),
        sa.Column("metadata", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "sequence", name="pk_checkpoints"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.run_id"], ondelete="CASCADE", name="fk_checkpoints_run_id_runs"
        ),
    )
    op.create_index("ix_checkpoints_created_at", "checkpoints", ["created_at"])

    op.create_table(
        "trace_events",
        sa.Column("run_id", sa.String(128), nullable=False),
        sa.Column("sequence", sa.Integer, nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("step_id", sa.String(255)),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "sequence", name="pk_trace_events"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.run_id"], ondelete="CASCADE", name="fk_trace_events_run_id_runs"
        ),
    )

    op.create_table(
        "continuations",
        sa.Column("continuation_id", sa.String(128), nullable=False),
        sa.Column("run_id", sa.String(128)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("requests", sa.Text, nullable=False),
        sa.Column("context", sa.Text, nullable=False),
        sa.Column("workflow_kind", sa.String(64)),
        sa.Column("expires_at", TS),
        sa.Column("escalated_at", TS),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("continuation_id", name="pk_continuations"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.run_id"], ondelete="CASCADE", name="fk_continuations_run_id_runs"
        ),
    )
    op.create_index("ix_continuations_run_id", "continuations", ["run_id"])
    op.create_index("ix_continuations_status_created_at", "continuations", ["status", "created_at"])

    op.create_table(
        "continuation_requests",
        sa.Column("continuation_id", sa.String(128), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(64)),
        sa.Column("assignee", sa.String(255)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("continuation_id", "request_id", name="pk_continuation_requests"),
        sa.ForeignKeyConstraint(
            ["continuation_id"],
            ["continuations.continuation_id"],
            ondelete="CASCADE",
            name="fk_continuation_requests_continuation_id_continuations",
        ),
    )
    op.create_index(
        "ix_continuation_requests_assignee_status", "continuation_requests", ["assignee", "status"]
    )
    op.create_index("ix_continuation_requests_request_id", "continuation_requests", ["request_id"])

    op.create_table(
        "audit_events",
        sa.Column("id", BIG_ID, nullable=False, autoincrement=True),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("event_type", sa.String(128), nullable=False),
        sa.Column("actor", sa.String(255)),
        sa.Column("run_id", sa.String(128)),
        sa.Column("continuation_id", sa.String(128)),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_events"),
        sa.UniqueConstraint("event_id", name="uq_audit_events_event_id"),
    )
    op.create_index("ix_audit_events_event_type", "audit_events", ["event_type"])
    op.create_index("ix_audit_events_run_id", "audit_events", ["run_id"])

    op.create_table(
        "queue",
        sa.Column("id", BIG_ID, nullable=False, autoincrement=True),
        sa.Column("run_id", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("lease_owner", sa.String(255)),
        sa.Column("lease_expires_at", TS),
        sa.Column("error", sa.Text),
        sa.Column("available_at", TS, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("finished_at", TS),
        sa.PrimaryKeyConstraint("id", name="pk_queue"),
    )
    op.create_index("ix_queue_status_id", "queue", ["status", "id"])
    op.create_index("ix_queue_run_id", "queue", ["run_id"])

    op.create_table(
        "idempotency_records",
        sa.Column("scope", sa.String(255), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("request_hash", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_code", sa.Integer),
        sa.Column("response", sa.Text),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("scope", "key", name="pk_idempotency_records"),
    )

    op.create_table(
        "locks",
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("acquired_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_locks"),
    )

    op.create_table(
        "project_metadata",
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("value", sa.Text),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_project_metadata"),
    )


def downgrade() -> None:
    for table in (
        "project_metadata",
        "locks",
        "idempotency_records",
        "queue",
        "audit_events",
        "continuation_requests",
        "continuations",
        "trace_events",
        "checkpoints",
        "runs",
    ):
        op.drop_table(table)
