"""The human tasks' tables: continuations (a paused run's pending requests), one row per
request, and the inbox search's terms.
"""

from __future__ import annotations

import sqlalchemy as sa

from kneo.store.column_types import JSONText, UTCDateTime
from kneo.store.table_metadata import Term, metadata, project_column

continuations = sa.Table(
    "continuations",
    metadata,
    sa.Column("continuation_id", sa.String(128), primary_key=True),
    sa.Column("run_id", sa.String(128), sa.ForeignKey("runs.run_id", ondelete="CASCADE")),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("requests", JSONText, nullable=False),
    sa.Column("context", JSONText, nullable=False),
    sa.Column("workflow_kind", sa.String(64)),
    sa.Column("expires_at", UTCDateTime),
    sa.Column("escalated_at", UTCDateTime),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    # What the inbox shows and filters on, copied from the run (or the promotion) when the
    # continuation is written, so a page of tasks is one query without a join (0008).
    sa.Column("workflow_name", sa.String(255)),
    sa.Column("environment", sa.String(128)),
    # What a row of the task list shows of a pending task, written with it, NULL once it is
    # not pending (kneo.store.tasks.inbox): a page reads no run state (0018).
    sa.Column("list_row", JSONText),
    project_column(),  # the inbox's indexes lead with it (0026): one project's tasks each
    sa.Index(None, "run_id"),
    # the inbox's keyset order, covering: a page or a count never reads the rows it skips
    sa.Index(None, "project_id", "status", "created_at", "continuation_id"),
    sa.Index(  # the inbox by workflow kind, promotions (0009)
        "ix_continuations_project_id_status_workflow_kind_created_at",
        "project_id",
        "status",
        "workflow_kind",
        "created_at",
        "continuation_id",
    ),
    # the inbox by environment, by workflow: each walks its own rows in the inbox's order (0017)
    sa.Index(
        "ix_continuations_project_id_status_environment_created_at",
        "project_id",
        "status",
        "environment",
        "created_at",
        "continuation_id",
    ),
    sa.Index(
        "ix_continuations_project_id_status_workflow_name_created_at",
        "project_id",
        "status",
        "workflow_name",
        "created_at",
        "continuation_id",
    ),
    # the inbox by deadline, the undated after (0023)
    sa.Index(
        "ix_continuations_project_id_status_expires_at_created_at",
        "project_id",
        "status",
        "expires_at",
        "created_at",
        "continuation_id",
    ),
)

# One row per request of a continuation, derived on every write, so listing can filter by
# assignee or kind with an index instead of scanning JSON.
continuation_requests = sa.Table(
    "continuation_requests",
    metadata,
    sa.Column(
        "continuation_id",
        sa.String(128),
        sa.ForeignKey("continuations.continuation_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("request_id", sa.String(128), primary_key=True),
    sa.Column("kind", sa.String(64)),
    sa.Column("assignee", sa.String(255)),
    sa.Column("status", sa.String(16), nullable=False),
    project_column(),
    # the inbox's counts: one project's pending rows only (0008, 0026)
    sa.Index(None, "project_id", "status", "assignee"),
    sa.Index(None, "request_id"),
    sqlite_with_rowid=False,
)

# The inbox search's index: one row per distinct word of a *pending* continuation (its
# prompts, run input, workflow name and assignees: kneo.store.tasks.search), deleted when it stops
# being pending. The key is a search's walk in the inbox's order; the second index finds a
# task's words (the other words of a query, and the delete) (0013).
continuation_terms = sa.Table(
    "continuation_terms",
    metadata,
    sa.Column("term", Term, primary_key=True),
    sa.Column("created_at", UTCDateTime, primary_key=True),
    sa.Column("continuation_id", sa.String(128), primary_key=True),
    sa.Index(None, "continuation_id", "term"),
    sqlite_with_rowid=False,
)
