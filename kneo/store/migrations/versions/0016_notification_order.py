"""Notification order per task: ``notifications.task``.

A dispatcher delivers concurrently, but a task's events reach each receiver in the order
they happened (``human.requested`` before its ``human.decision``): a delivery is claimed
only once no earlier delivery of the same task to the same receiver is still pending or in
flight. ``task`` is the event's continuation id, copied when the event is routed (``NULL``
for events of no task, which wait for nothing), and ``(receiver, task, id)`` finds the
earlier deliveries in one index probe, whatever the planner's statistics say.

Rows still to deliver get their task here; finished ones need none.

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from kneo.store.migrate import drop_columns

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("notifications", sa.Column("task", sa.String(128)))
    op.execute(
        "UPDATE notifications SET task = (SELECT continuation_id FROM notification_events"
        " WHERE notification_events.event_id = notifications.event_id)"
        " WHERE status IN ('pending', 'sending')"
    )
    op.create_index(
        "ix_notifications_receiver_task_id", "notifications", ["receiver", "task", "id"]
    )


def downgrade() -> None:
    op.drop_index("ix_notifications_receiver_task_id", "notifications")
    drop_columns("notifications", "task")
