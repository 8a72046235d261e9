"""Run sessions, list filters and search.

``runs.session_id`` groups the runs a caller starts together (``POST /v1/runs`` with
``session_id``). Each list filter walks an index in the listing's order: ``(session_id,
created_at, run_id)`` (only runs that have a session), ``(workflow_name, ...)``,
``(workflow_kind, ...)`` and the failed runs' ``(created_at, run_id)`` (``error IS NOT
NULL``), so a rare value's page costs what a common one's does. The inbox pages by
deadline on ``(status, expires_at, created_at, continuation_id)``. ``run_terms`` is the run
search's index (``kneo.store.tasks.search``): the words of each run's output and error message,
keyed ``(term, created_at, run_id)``, with ``(run_id, term)`` to probe a run's other words.
Existing runs with an output or an error are indexed here, as a new outcome is when written.

Revision ID: 0023
Revises: 0022
Create Date: 2026-11-25
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

from kneo.store.migrate import drop_columns
from kneo.store.tasks.search import outcome_terms

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
_BATCH = 5000
_INDEXES = (
    ("ix_runs_session_id_created_at_run_id", ["session_id", "created_at", "run_id"], "session_id IS NOT NULL"),
    ("ix_runs_workflow_name_created_at_run_id", ["workflow_name", "created_at", "run_id"], None),
    ("ix_runs_workflow_kind_created_at_run_id", ["workflow_kind", "created_at", "run_id"], None),
    ("ix_runs_failed_created_at_run_id", ["created_at", "run_id"], "error IS NOT NULL"),
)  # fmt: skip


_BY_EXPIRY = "ix_continuations_status_expires_at_created_at_continuation_id"
_BY_EXPIRY_COLUMNS = ["status", "expires_at", "created_at", "continuation_id"]


def upgrade() -> None:
    op.add_column("runs", sa.Column("session_id", sa.String(128)))
    for name, columns, where in _INDEXES:
        partial = sa.text(where) if where else None
        op.create_index(name, "runs", columns, sqlite_where=partial, postgresql_where=partial)
    op.create_table(
        "run_terms",
        sa.Column("term", sa.String(40), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("run_id", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("term", "created_at", "run_id", name="pk_run_terms"),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_run_terms_run_id_term", "run_terms", ["run_id", "term"])
    op.create_index(_BY_EXPIRY, "continuations", _BY_EXPIRY_COLUMNS)
    _index_outcomes(op.get_bind())


def _index_outcomes(bind: sa.Connection) -> None:
    """The search rows of every run that has an output or an error."""
    found = bind.execute(
        sa.text(
            "SELECT run_id, created_at, output_text, error FROM runs "
            "WHERE output_text IS NOT NULL OR error IS NOT NULL"
        )
    )
    insert = sa.text(
        "INSERT INTO run_terms (term, created_at, run_id) VALUES (:term, :created_at, :run_id)"
    )
    batch: list[dict[str, object]] = []
    for run_id, created_at, output_text, error in found.all():
        error_value = json.loads(error) if isinstance(error, str) else error
        for term in outcome_terms(output_text, error_value):
            batch.append({"term": term, "created_at": created_at, "run_id": run_id})
        if len(batch) >= _BATCH:
            bind.execute(insert, batch)
            batch.clear()
    if batch:
        bind.execute(insert, batch)


def downgrade() -> None:
    op.drop_index(_BY_EXPIRY, "continuations")
    op.drop_table("run_terms")
    for name, _columns, _where in _INDEXES:
        op.drop_index(name, "runs")
    drop_columns("runs", "session_id")
