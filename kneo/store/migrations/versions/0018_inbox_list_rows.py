"""Inbox list rows: ``continuations.list_row``, what the task list shows of a pending task.

Written with the task from the bodies the run resumes from (``kneo.store.tasks.inbox``), redacted,
so a page of the list reads no run state. Existing pending tasks get theirs here, as a new
one does when it is written: from their entries and their run's pending requests and input.

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-24
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

from kneo.jsontext import dumps
from kneo.store.tasks.inbox import list_row

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

_BATCH = 1000


def upgrade() -> None:
    op.add_column("continuations", sa.Column("list_row", sa.Text()))
    _backfill(op.get_bind())


def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def _backfill(bind: sa.Connection) -> None:
    """The list row of every pending task, as :meth:`Transaction.put_continuation` writes it."""
    pending = bind.execute(
        sa.text(
            "SELECT c.continuation_id, c.requests, r.input_text, r.state "
            "FROM continuations c LEFT JOIN runs r ON r.run_id = c.run_id "
            "WHERE c.status = 'pending'"
        )
    )
    update = sa.text("UPDATE continuations SET list_row = :row WHERE continuation_id = :cid")
    batch: list[dict[str, Any]] = []
    for cid, requests, input_text, state in pending.all():
        entries = [e for e in _json(requests) or [] if isinstance(e, dict)]
        bodies = [p for p in (_json(state) or {}).get("pending") or [] if isinstance(p, dict)]
        row = list_row(entries, bodies, input_text or "")
        if row is not None:
            batch.append({"row": dumps(row), "cid": cid})
        if len(batch) >= _BATCH:
            bind.execute(update, batch)
            batch.clear()
    if batch:
        bind.execute(update, batch)


def downgrade() -> None:
    op.drop_column("continuations", "list_row")
