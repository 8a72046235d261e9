"""The runs' tables: the runs, their search terms, the specs they run, and what each left
behind (checkpoints, trace events).
"""

from __future__ import annotations

import sqlalchemy as sa

from kneo.store.column_types import JSONText, UTCDateTime
from kneo.store.table_metadata import Term, metadata, project_column

#: The runs ``(updated_at, run_id)`` holds: all but the running ones (see ``list_runs``).
SETTLED = sa.text("status <> 'running'")
HAS_SESSION = sa.text("session_id IS NOT NULL")
FAILED = sa.text("error IS NOT NULL")

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("run_id", sa.String(128), primary_key=True),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("target", sa.String(32), nullable=False),
    sa.Column("workflow_name", sa.String(255)),
    sa.Column("workflow_kind", sa.String(64)),
    sa.Column("agent_name", sa.String(255)),
    sa.Column("input_text", sa.Text, nullable=False),
    sa.Column("output_text", sa.Text),
    sa.Column("error", JSONText),
    sa.Column("environment", sa.String(128)),
    # ``{}`` when the spec lives in ``specs`` under ``spec_ref`` (runs since migration 0003)
    sa.Column("spec", JSONText, nullable=False),
    sa.Column("spec_digest", sa.String(128)),
    sa.Column("bundle_name", sa.String(255)),
    sa.Column("bundle_revision", sa.Integer),
    sa.Column("bundle_commit", sa.String(128)),
    sa.Column("state", JSONText, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("cancel_requested", sa.Boolean, nullable=False),
    sa.Column("deadline_at", UTCDateTime),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("started_at", UTCDateTime),
    sa.Column("finished_at", UTCDateTime),
    sa.Column("metadata", JSONText, nullable=False),
    sa.Column("checkpoint_seq", sa.Integer, nullable=False),
    sa.Column("trace_seq", sa.Integer, nullable=False),
    sa.Column("spec_ref", sa.String(64)),
    # The executing process's lease (migration 0007): who runs it and until when, unless
    # renewed. Kept on the row its create and outcome transactions write anyway.
    sa.Column("lease_owner", sa.String(255)),
    sa.Column("lease_expires_at", UTCDateTime),
    # the keyset orders of ``list_runs`` (0009); a running run's ``updated_at`` moves at
    # every step boundary, so the last order leaves running runs to the first index (0021)
    # the run's session (0023): the runs a caller groups, listed and chained in order
    sa.Column("session_id", sa.String(128)),
    # each listing's index leads with the project (0026): a project's page is a walk of its
    # own entries, however many projects there are
    project_column(),
    sa.Index(None, "project_id", "status", "created_at", "run_id"),
    sa.Index(None, "project_id", "created_at", "run_id"),
    sa.Index(None, "project_id", "updated_at", "run_id", sqlite_where=SETTLED),
    # the list filters of 0023, each an index in the listing's order: a rare value's page
    # costs what a common one's does
    sa.Index(None, "project_id", "session_id", "created_at", "run_id", sqlite_where=HAS_SESSION),
    sa.Index(None, "project_id", "workflow_name", "created_at", "run_id"),
    sa.Index(None, "project_id", "workflow_kind", "created_at", "run_id"),
    sa.Index(
        "ix_runs_failed_project_id_created_at_run_id",
        "project_id",
        "created_at",
        "run_id",
        sqlite_where=FAILED,
    ),
)

# The run search's index (0023): one row per distinct word of a run's output and error
# message (``kneo.store.tasks.search``), written when the run's outcome is. The key is a search's
# walk in the runs' newest-first order; the second index finds a run's words (the other words
# of a query, and the rows to replace when the outcome changes).
run_terms = sa.Table(
    "run_terms",
    metadata,
    sa.Column("term", Term, primary_key=True),
    sa.Column("created_at", UTCDateTime, primary_key=True),
    sa.Column("run_id", sa.String(128), primary_key=True),
    sa.Index(None, "run_id", "term"),
    sqlite_with_rowid=False,
)

# Resolved specs, stored once each: ``digest`` is the sha256 of the stored JSON text (the
# content, not the bundle digest), so a row never changes once written.
specs = sa.Table(
    "specs",
    metadata,
    sa.Column("digest", sa.String(64), primary_key=True),
    sa.Column("spec", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

# Tables keyed by (text, integer) are WITHOUT ROWID on SQLite (migration 0004): rows live in
# the primary-key B-tree, with no second copy of the key in an autoindex. A checkpoint row is
# a keyframe or a patch on the row before it (``encoding``; see kneo.store.runs.delta).
#
# Neither ``checkpoints`` nor ``trace_events`` has a foreign key to ``runs`` (migration 0022):
# their rows are written only by the statement that compare-and-sets the run, and retention
# deletes them before the run; a key's check per row was most of a step's server work.
checkpoints = sa.Table(
    "checkpoints",
    metadata,
    sa.Column("run_id", sa.String(128), primary_key=True),
    sa.Column("sequence", sa.Integer, primary_key=True),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("step_id", sa.String(255)),
    sa.Column("status", sa.String(32)),
    sa.Column("encoding", sa.String(16), nullable=False),
    sa.Column("payload", sa.LargeBinary, nullable=False),
    sa.Column("size_bytes", sa.Integer, nullable=False),
    sa.Column("truncated", sa.Boolean, nullable=False),
    sa.Column("metadata", JSONText, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sqlite_with_rowid=False,
)

trace_events = sa.Table(
    "trace_events",
    metadata,
    sa.Column("run_id", sa.String(128), primary_key=True),
    sa.Column("sequence", sa.Integer, primary_key=True),
    sa.Column("event_type", sa.String(64), nullable=False),
    sa.Column("step_id", sa.String(255)),
    sa.Column("payload", JSONText, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sqlite_with_rowid=False,
)
