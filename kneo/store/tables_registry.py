"""The GitOps registry's tables: bundle revisions (at most one active per bundle and
environment), their conditions, suspensions, pins and blocked digests, the controller's
status and requests, the change feed of an incremental reconcile and promotion approvals.
"""

from __future__ import annotations

import sqlalchemy as sa

from kneo.store.column_types import JSONText, UTCDateTime
from kneo.store.table_metadata import BigId, metadata, project_column

bundle_revisions = sa.Table(
    "bundle_revisions",
    metadata,
    project_column(key=True),
    sa.Column("bundle_name", sa.String(255), primary_key=True),
    sa.Column("environment", sa.String(128), primary_key=True),
    sa.Column("revision", sa.Integer, primary_key=True),
    sa.Column("digest", sa.String(128), nullable=False),
    sa.Column("commit", sa.String(128)),
    sa.Column("signer_key_ids", JSONText, nullable=False),
    sa.Column("approved_by", JSONText, nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("diagnostics", JSONText, nullable=False),
    sa.Column("spec", JSONText, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("activated_at", UTCDateTime),
    sa.Column("deactivated_at", UTCDateTime),
    # each a project's own (0026)
    sa.Index(None, "project_id", "environment", "status"),
    sa.Index(
        "ix_bundle_revisions_project_id_bundle_name_environment_digest",
        "project_id",
        "bundle_name",
        "environment",
        "digest",
    ),
    sa.Index(  # one environment's list (0009)
        "ix_bundle_revisions_project_id_environment_bundle_name_revision",
        "project_id",
        "environment",
        "bundle_name",
        "revision",
    ),
    # pending promotions, for each reconcile; the registry list of one status (0011)
    sa.Index(
        "ix_bundle_revisions_project_id_status_bundle_name_environment",
        "project_id",
        "status",
        "bundle_name",
        "environment",
        "revision",
    ),
)

# The database itself guarantees at most one active revision per (bundle, environment) of a
# project: a partial unique index (created by migration 0002 on both backends, 0026 keys it
# by project).
one_active_revision = sa.Index(
    "uq_bundle_revisions_one_active",
    bundle_revisions.c.project_id,
    bundle_revisions.c.bundle_name,
    bundle_revisions.c.environment,
    unique=True,
    sqlite_where=sa.text("status = 'active'"),
)

bundle_conditions = sa.Table(
    "bundle_conditions",
    metadata,
    project_column(key=True),
    sa.Column("bundle_name", sa.String(255), primary_key=True),
    sa.Column("environment", sa.String(128), primary_key=True),
    sa.Column("type", sa.String(64), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(128), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("last_transition_time", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

bundle_suspensions = sa.Table(
    "bundle_suspensions",
    metadata,
    project_column(key=True),
    sa.Column("bundle_name", sa.String(255), primary_key=True),
    sa.Column("environment", sa.String(128), primary_key=True),
    sa.Column("reason", sa.Text),
    sa.Column("suspended_by", sa.String(255)),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

# A bundle held at one revision in one environment (``kneo registry pin|rollback``,
# migration 0014): the controller promotes nothing else there until it is unpinned.
bundle_pins = sa.Table(
    "bundle_pins",
    metadata,
    project_column(key=True),
    sa.Column("bundle_name", sa.String(255), primary_key=True),
    sa.Column("environment", sa.String(128), primary_key=True),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("digest", sa.String(128), nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("pinned_by", sa.String(255)),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

# A spec digest never promoted again, in any environment of its project, until unblocked
# (migration 0014; by project, 0026).
blocked_digests = sa.Table(
    "blocked_digests",
    metadata,
    project_column(key=True),
    sa.Column("digest", sa.String(128), primary_key=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("blocked_by", sa.String(255)),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

controller_status = sa.Table(
    "controller_status",
    metadata,
    project_column(key=True),
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("last_fetched_commit", sa.String(128)),
    sa.Column("last_reconcile_started_at", UTCDateTime),
    sa.Column("last_reconcile_duration_seconds", sa.Float),
    sa.Column("last_error", sa.Text),
    sa.Column("details", JSONText, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

# Reconcile requests (migration 0013): a webhook or ``POST /v1/controller/reconcile`` on any
# API replica queues one here; the leading controller wakes (PostgreSQL NOTIFY, else its
# poll), takes the queued ones at the start of a pass and records the pass's result on them.
controller_requests = sa.Table(
    "controller_requests",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("actor", sa.String(255)),
    sa.Column("detail", JSONText, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("taken_by", sa.String(255)),
    sa.Column("requested_at", UTCDateTime, nullable=False),
    sa.Column("started_at", UTCDateTime),
    sa.Column("finished_at", UTCDateTime),
    sa.Column("result", JSONText),
    project_column(),
    # a project's queued requests for a controller, and every project's (0026)
    sa.Index(None, "status", "project_id", "name"),
)

# Registry writes made outside the controller (migration 0011): the newest change sequence
# number per (bundle, environment), so an incremental reconcile re-reads only those keys.
registry_changes = sa.Table(
    "registry_changes",
    metadata,
    project_column(key=True),
    sa.Column("bundle_name", sa.String(255), primary_key=True),
    sa.Column("environment", sa.String(128), primary_key=True),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Index(None, "project_id", "seq"),
)

# One row per project (``project_id``; 0026, before it one row of ``id`` 1): the last change
# sequence number handed out in it. Taking the next one updates this row, so the numbers
# become visible in commit order on PostgreSQL too, and projects never wait for each other.
registry_change_counter = sa.Table(
    "registry_change_counter",
    metadata,
    project_column(key=True),
    sa.Column("seq", sa.BigInteger, nullable=False),
)

promotion_approvals = sa.Table(
    "promotion_approvals",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("bundle_name", sa.String(255), nullable=False),
    sa.Column("environment", sa.String(128), nullable=False),
    sa.Column("digest", sa.String(128), nullable=False),
    sa.Column("approver", sa.String(255), nullable=False),
    sa.Column("decision", sa.String(16), nullable=False),
    sa.Column("comment", sa.Text),
    sa.Column("created_at", UTCDateTime, nullable=False),
    project_column(),
    sa.UniqueConstraint(
        "project_id",
        "bundle_name",
        "environment",
        "digest",
        "approver",
        name="uq_promotion_approvals_project_id_bundle_env_digest_approver",
    ),
)
