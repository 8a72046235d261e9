"""The outbox wakes its dispatcher: a PostgreSQL trigger ``NOTIFY``s ``kneo_outbox``.

A statement-level trigger on ``notification_events`` sends the notification, which the
server delivers when the inserting transaction commits (and once per transaction however
many rows it wrote), so the dispatcher of any process delivers a new event at once instead
of at its next poll, and the writer pays no round trip for it. SQLite has no channel
between processes: there, the process that wrote the event wakes its own dispatcher.

Revision ID: 0033
Revises: 0030
Create Date: 2026-11-27
"""

from __future__ import annotations

from alembic import op

revision = "0033"
down_revision = "0030"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute(
        "CREATE OR REPLACE FUNCTION kneo_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN PERFORM pg_notify('kneo_outbox', ''); RETURN NULL; END $$"
    )
    op.execute(
        "CREATE TRIGGER notification_events_notify AFTER INSERT ON notification_events "
        "FOR EACH STATEMENT EXECUTE FUNCTION kneo_outbox_notify()"
    )


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS notification_events_notify ON notification_events")
    op.execute("DROP FUNCTION IF EXISTS kneo_outbox_notify()")
