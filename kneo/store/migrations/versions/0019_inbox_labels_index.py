"""Inbox filters by assignee and by kind on an index carrying the inbox's order.

Each pending task's requests are labelled in ``continuation_terms`` (``=a:<assignee>``,
``=k:<kind>``: ``kneo.store.tasks.search``), whose key ``(term, created_at, continuation_id)`` is
the inbox's order, so a page of one assignee's or one kind's tasks walks its own rows, and a
rare assignee costs what a common one does. Existing pending tasks are labelled here, as a new
one is when it is written; no table or index changes.

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from kneo.store.tasks.search import LABEL, PROMOTION, task_labels

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

_BATCH = 5000


def upgrade() -> None:
    bind = op.get_bind()
    rows = bind.execute(
        sa.text(
            "SELECT r.continuation_id, r.kind, r.assignee, c.created_at, c.workflow_kind "
            "FROM continuation_requests r JOIN continuations c "
            "ON c.continuation_id = r.continuation_id "
            "WHERE r.status = 'pending' AND c.status = 'pending'"
        )
    ).all()
    insert = sa.text(
        "INSERT INTO continuation_terms (term, created_at, continuation_id) "
        "VALUES (:term, :created_at, :cid)"
    )
    seen: set[tuple[str, str]] = set()
    batch: list[dict[str, object]] = []
    for cid, kind, assignee, created_at, workflow_kind in rows:
        request = {"kind": kind, "assignee": assignee}
        for term in task_labels([request], promotion=workflow_kind == PROMOTION):
            if (term, cid) not in seen:
                seen.add((term, cid))
                batch.append({"term": term, "created_at": created_at, "cid": cid})
        if len(batch) >= _BATCH:
            bind.execute(insert, batch)
            batch.clear()
    if batch:
        bind.execute(insert, batch)


def downgrade() -> None:
    op.execute(f"DELETE FROM continuation_terms WHERE substr(term, 1, 1) = '{LABEL}'")
