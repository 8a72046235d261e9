"""Runs by update: the ``(updated_at, run_id)`` index leaves the running runs out.

A running run's ``updated_at`` moves at every step boundary, and each move rewrote the
index's last page: on SQLite one more page written to the WAL by every step (about 12,000
instructions and two system calls of a step's ~0.7 M). A run leaves the index when it starts
running and comes back when it settles (paused, blocked, finished). ``list_runs`` sorted by
``updated_at`` now merges two walks: the settled runs in this index's order, and the running
ones, which ``(status, created_at, run_id)`` finds (as many as execute at once) and the page
sorts.

Revision ID: 0021
Revises: 0020
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

_NAME = "ix_runs_updated_at_run_id"
_COLUMNS = ["updated_at", "run_id"]


def upgrade() -> None:
    op.drop_index(_NAME, "runs")
    settled = sa.text("status <> 'running'")
    op.create_index(_NAME, "runs", _COLUMNS, sqlite_where=settled, postgresql_where=settled)


def downgrade() -> None:
    op.drop_index(_NAME, "runs")
    op.create_index(_NAME, "runs", _COLUMNS)
