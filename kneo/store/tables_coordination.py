"""The tables processes coordinate through: the run queue with its leases, idempotency
records, named locks and the interaction callbacks already accepted.
"""

from __future__ import annotations

import sqlalchemy as sa

from kneo.store.column_types import JSONText, UTCDateTime
from kneo.store.table_metadata import BigId, metadata, project_column

queue = sa.Table(
    "queue",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(128), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("lease_owner", sa.String(255)),
    sa.Column("lease_expires_at", UTCDateTime),
    sa.Column("error", JSONText),
    sa.Column("available_at", UTCDateTime, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime),
    # the run's project (0026): a worker's claim is global, and the record says which
    # project's run it is
    project_column(),
    sa.Index(None, "status", "id"),
    sa.Index(None, "run_id"),
)

# keyed by project too (0026): the same key in two projects is two requests
idempotency_records = sa.Table(
    "idempotency_records",
    metadata,
    project_column(key=True),
    sa.Column("scope", sa.String(255), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("request_hash", sa.String(128), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("status_code", sa.Integer),
    sa.Column("response", JSONText),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

locks = sa.Table(
    "locks",
    metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("owner", sa.String(255), nullable=False),
    sa.Column("acquired_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sqlite_with_rowid=False,  # migration 0006: one B-tree, taken and dropped by every run
)

# Interaction callbacks accepted within their replay window (0024): a Slack click's
# signature, by the SHA-256 of the receiver's name and the signature, until its timestamp's
# window has passed. The same callback sent again, to any process or replica or after a
# restart, finds its row and is refused; rows past their window are deleted as new ones come.
seen_callbacks = sa.Table(
    "seen_callbacks",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Index(None, "expires_at"),
    sqlite_with_rowid=False,
)
