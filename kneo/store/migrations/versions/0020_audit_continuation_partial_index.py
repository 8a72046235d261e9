"""Audit events are indexed by continuation only when they have one.

``(continuation_id, id)`` (0009) serves the audit filter by continuation. Most events (a
run's start, its steps, its end, the controller's) have no continuation, and each of them
still added an entry at the tail of the index's ``NULL`` run: one more index page written by
every commit that writes an audit event. The index now holds the rows that have a
continuation only; ``continuation_id = :x`` implies ``NOT NULL``, so both databases still
use it for the filter.

Revision ID: 0020
Revises: 0019
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

_NAME = "ix_audit_events_continuation_id_id"
_COLUMNS = ["continuation_id", "id"]


def upgrade() -> None:
    op.drop_index(_NAME, "audit_events")
    present = sa.text("continuation_id IS NOT NULL")
    op.create_index(_NAME, "audit_events", _COLUMNS, sqlite_where=present, postgresql_where=present)


def downgrade() -> None:
    op.drop_index(_NAME, "audit_events")
    op.create_index(_NAME, "audit_events", _COLUMNS)
