"""Notifications: an outbox of notifiable events and one delivery row per receiver.

* ``notification_events``: written in the same transaction as the event that causes it
  (``human.requested`` with its pause, ``bundle.promoted`` with the promotion, ...), so a
  crash can neither lose a notification nor invent one. ``routed`` turns true when a
  dispatcher has fanned it out to the receivers configured in its process.
* ``notifications``: one row per (event, receiver), claimed with a lease, retried with
  backoff, ``sent`` or ``dead`` in the end.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "notification_events",
        sa.Column("event_id", sa.String(128), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("environment", sa.String(128)),
        sa.Column("assignee", sa.String(255)),
        sa.Column("actor", sa.String(255)),
        sa.Column("run_id", sa.String(128)),
        sa.Column("continuation_id", sa.String(128)),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("routed", sa.Boolean, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("event_id", name="pk_notification_events"),
    )
    op.create_index(
        "ix_notification_events_routed_created_at",
        "notification_events",
        ["routed", "created_at"],
    )
    op.create_table(
        "notifications",
        sa.Column("id", BIG_ID, nullable=False, autoincrement=True),
        sa.Column("event_id", sa.String(128), nullable=False),
        sa.Column("receiver", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("available_at", TS, nullable=False),
        sa.Column("lease_owner", sa.String(255)),
        sa.Column("lease_expires_at", TS),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("sent_at", TS),
        sa.PrimaryKeyConstraint("id", name="pk_notifications"),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["notification_events.event_id"],
            name="fk_notifications_event_id_notification_events",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("event_id", "receiver", name="uq_notifications_event_id_receiver"),
    )
    op.create_index(
        "ix_notifications_status_available_at", "notifications", ["status", "available_at"]
    )


def downgrade() -> None:
    op.drop_table("notifications")
    op.drop_table("notification_events")
