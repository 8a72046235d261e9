"""The projects' tables: the projects themselves (the unit of tenancy), each project's
metadata and audit log, and the console's sign-ins (a person's, not a project's).
"""

from __future__ import annotations

import sqlalchemy as sa

from kneo.store.column_types import JSONText, UTCDateTime
from kneo.store.table_metadata import BigId, metadata, project_column

# The projects (migration 0026): the unit of tenancy. Row 1 is ``default`` (the project of
# a single-team install, and of every row written before projects); ``definition`` is its
# JSON definition, written by a platform administrator (``NULL``: the host's configuration).
projects = sa.Table(
    "projects",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("definition", JSONText),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

project_metadata = sa.Table(
    "project_metadata",
    metadata,
    project_column(key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("value", JSONText),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

audit_events = sa.Table(
    "audit_events",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(64), nullable=False, unique=True),
    sa.Column("event_type", sa.String(128), nullable=False),
    sa.Column("actor", sa.String(255)),
    sa.Column("run_id", sa.String(128)),
    sa.Column("continuation_id", sa.String(128)),
    sa.Column("payload", JSONText, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    project_column(),
    # newest first (``id``) under each filter (0009), a project's own (0026); most events have
    # no continuation (0020). Run and continuation ids are global: the project is checked on
    # the few rows of one run or task
    sa.Index(None, "project_id", "id"),
    sa.Index(None, "project_id", "event_type", "id"),
    sa.Index(None, "run_id", "id"),
    sa.Index(None, "continuation_id", "id", sqlite_where=sa.text("continuation_id IS NOT NULL")),
)

# Console sign-ins kept on the server (0015): the cookie holds a random id, the row its
# SHA-256, who signed in (``principal``), how (``method``: api_key, oidc_session), the
# person's claims for an OIDC sign-in (roles are re-derived from them on every request), and
# ``ended_at`` once they sign out: a copied cookie is refused from then on.
console_sessions = sa.Table(
    "console_sessions",
    metadata,
    sa.Column("session_hash", sa.String(64), primary_key=True),
    sa.Column("principal", sa.String(255), nullable=False),
    sa.Column("method", sa.String(32), nullable=False),
    sa.Column("person", JSONText),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Column("ended_at", UTCDateTime),
    # the project the person last viewed (0026): a session is the person's, not a project's
    project_column(nullable=True),
    sa.Index(None, "expires_at"),
)
