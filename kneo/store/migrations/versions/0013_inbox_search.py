"""Inbox search: ``continuation_terms``, the words each pending task is found by.

``(term, created_at, continuation_id)`` is the key, so a search walks one word's rows in the
inbox's order and pages by keyset; ``(continuation_id, term)`` finds a task's other words
and its rows to delete once it stops being pending (``kneo.store.tasks.search``).

Existing pending tasks are indexed here, as a new one is when it is written: the words of
their prompts (from the run's pending requests, or the continuation's own entries), the
run's input (its first characters), the workflow name and the assignees, redacted first.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-26
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

from kneo.redaction import redact_text
from kneo.store.tasks.search import INPUT_CHARS, task_terms

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "continuation_terms",
        sa.Column("term", sa.String(40), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("continuation_id", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint(
            "term", "created_at", "continuation_id", name="pk_continuation_terms"
        ),
        sqlite_with_rowid=False,
    )
    op.create_index(
        "ix_continuation_terms_continuation_id_term",
        "continuation_terms",
        ["continuation_id", "term"],
    )
    _index_pending(op.get_bind())


def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def _index_pending(bind: sa.Connection) -> None:
    """The words of every pending task, as :meth:`Transaction.put_continuation` writes them."""
    pending = bind.execute(
        sa.text(
            "SELECT c.continuation_id, c.requests, c.workflow_name, r.input_text, r.state "
            "FROM continuations c LEFT JOIN runs r ON r.run_id = c.run_id "
            "WHERE c.status = 'pending'"
        )
    ).all()
    insert = sa.text(
        "INSERT INTO continuation_terms (term, created_at, continuation_id) "
        "SELECT :term, created_at, continuation_id FROM continuations "
        "WHERE continuation_id = :cid"
    )
    for cid, requests, workflow_name, input_text, state in pending:
        entries = [e for e in _json(requests) or [] if isinstance(e, dict)]
        bodies = [p for p in (_json(state) or {}).get("pending") or [] if isinstance(p, dict)]
        prompts = [str(b.get("prompt") or "") for b in [*entries, *bodies]]
        text = redact_text(" ".join([*prompts, (input_text or "")[:INPUT_CHARS]]))
        assignees = [e.get("assignee") for e in entries]
        terms = task_terms([workflow_name, *assignees, text])
        if terms:
            bind.execute(insert, [{"term": term, "cid": cid} for term in terms])


def downgrade() -> None:
    op.drop_index("ix_continuation_terms_continuation_id_term", "continuation_terms")
    op.drop_table("continuation_terms")
