"""Promotions under their approvers in the inbox; interaction callbacks remembered.

A pending promotion's (freeze override's, rollback's) approvers become assignee labels of it
(``=a:<approver>`` rows of ``continuation_terms``: ``kneo.store.tasks.search``), so the inbox's
assignee filter and *Mine* find it under ``group:release`` or ``user:cto@example.com`` as a
task assigned to them; existing pending promotions are labelled here, as a new one is when it
is written. ``seen_callbacks`` keeps each accepted Slack interaction callback (a digest of its
signature) until its 5-minute window has passed, so a replay is refused by every process.

Revision ID: 0024
Revises: 0023
Create Date: 2026-11-26
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

from kneo.store.tasks.search import ASSIGNEE, PROMOTION, approvers_of, label

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "seen_callbacks",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_seen_callbacks"),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_seen_callbacks_expires_at", "seen_callbacks", ["expires_at"])
    _label_approvers(op.get_bind())


def _approver_labels(bind: sa.Connection) -> list[dict[str, object]]:
    """The approver labels of every pending promotion that has a pending request, less those
    it has already (an approver who is also a request's assignee)."""
    found = bind.execute(
        sa.text(
            "SELECT continuation_id, created_at, context FROM continuations "
            "WHERE status = 'pending' AND workflow_kind = :kind"
        ),
        {"kind": PROMOTION},
    ).all()
    rows: list[dict[str, object]] = []
    for cid, created_at, context in found:
        value = json.loads(context) if isinstance(context, str) else context
        pending = bind.execute(
            sa.text(
                "SELECT count(*) FROM continuation_requests "
                "WHERE continuation_id = :cid AND status = 'pending'"
            ),
            {"cid": cid},
        ).scalar_one()
        if not pending:
            continue
        have = set(
            bind.execute(
                sa.text("SELECT term FROM continuation_terms WHERE continuation_id = :cid"),
                {"cid": cid},
            ).scalars()
        )
        for term in dict.fromkeys(label(ASSIGNEE, a) for a in approvers_of(value)):
            if term not in have:
                rows.append({"term": term, "created_at": created_at, "cid": cid})
    return rows


def _label_approvers(bind: sa.Connection) -> None:
    rows = _approver_labels(bind)
    if rows:
        bind.execute(
            sa.text(
                "INSERT INTO continuation_terms (term, created_at, continuation_id) "
                "VALUES (:term, :created_at, :cid)"
            ),
            rows,
        )


def downgrade() -> None:
    """The approver labels of pending promotions go (a request's own assignee label stays)."""
    bind = op.get_bind()
    found = bind.execute(
        sa.text(
            "SELECT c.continuation_id, c.context FROM continuations c "
            "WHERE c.status = 'pending' AND c.workflow_kind = :kind"
        ),
        {"kind": PROMOTION},
    ).all()
    for cid, context in found:
        value = json.loads(context) if isinstance(context, str) else context
        assigned = set(
            bind.execute(
                sa.text(
                    "SELECT assignee FROM continuation_requests WHERE continuation_id = :cid "
                    "AND status = 'pending' AND assignee IS NOT NULL"
                ),
                {"cid": cid},
            ).scalars()
        )
        for term in {label(ASSIGNEE, a) for a in approvers_of(value) if a not in assigned}:
            bind.execute(
                sa.text(
                    "DELETE FROM continuation_terms WHERE continuation_id = :cid AND term = :term"
                ),
                {"cid": cid, "term": term},
            )
    op.drop_index("ix_seen_callbacks_expires_at", "seen_callbacks")
    op.drop_table("seen_callbacks")
