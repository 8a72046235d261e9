"""SQLAlchemy Core tables: the schema as the code sees it at migration head.

Migrations under ``kneo/store/migrations/versions`` are frozen snapshots that build this
schema step by step; ``tests/store/test_migrations.py`` checks both agree. Column types are
portable: JSON is kept as compact text (one encoding on every backend) and timestamps are
UTC-aware on the way out whatever the database stores.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from kneo import jsontext
from kneo.projects import DEFAULT_PROJECT_ID


class _EpochMicros(sa.types.TypeEngine[int]):
    """SQLite's column for :class:`UTCDateTime`: declared ``DATETIME``, values pass as is."""

    __visit_name__ = "DATETIME"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def epoch_micros(value: datetime) -> int:
    """SQLite's stored form of a timestamp (naive means UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // _MICROSECOND


def _as_utc(value: datetime) -> datetime:
    """PostgreSQL's bound form of a timestamp (naive means UTC)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in Python; ``timestamptz`` on PostgreSQL, integer microseconds since
    the Unix epoch on SQLite.

    On SQLite an integer takes 6-8 bytes where SQLAlchemy's ISO text takes 26, orders the same
    way, and needs no string formatting or parsing per value. The column stays declared
    ``DATETIME`` (what migrations 0001-0004 created): that gives it NUMERIC affinity, so
    integers are stored as integers with no table rebuild, and new and migrated databases
    have the same schema. Migration 0005 converts the text values written before.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "sqlite":
            return _EpochMicros()
        return self.impl_instance

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | int | None:
        if value is None:
            return None
        return epoch_micros(value) if dialect.name == "sqlite" else _as_utc(value)

    def process_result_value(
        self, value: int | datetime | None, dialect: Dialect
    ) -> datetime | None:
        return _stored_utc(value)


def _stored_utc(value: int | datetime | None) -> datetime | None:
    """A stored timestamp (SQLite's integer, PostgreSQL's ``timestamptz``) as aware UTC."""
    if value is None:
        return None
    if isinstance(value, int):
        return _EPOCH + timedelta(microseconds=value)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class JSONText(TypeDecorator[Any]):
    """JSON stored as compact text, identical on SQLite and PostgreSQL."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return jsontext.dumps(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:
        return _stored_json(value)


def _stored_json(value: str | None) -> Any:
    """A stored JSON text as its value."""
    return None if value is None else json.loads(value)


def value_binder(
    coltype: sa.types.TypeEngine[Any], dialect: Dialect
) -> Callable[[Any], Any] | None:
    """What ``coltype``'s bind processor does to a value that is not ``None``, for the raw
    write paths (:meth:`~kneo.store.wire.statement_cache.StatementCache.bind`); ``None``: pass it
    as is.
    Kneo's own types directly: SQLAlchemy's wrapper of a :class:`TypeDecorator` adds two
    calls per value (their implementations have no processor of their own)."""
    if isinstance(coltype, JSONText):
        return jsontext.dumps
    if isinstance(coltype, UTCDateTime):
        return epoch_micros if dialect.name == "sqlite" else _as_utc
    return coltype.dialect_impl(dialect).bind_processor(dialect)


def value_reader(
    coltype: sa.types.TypeEngine[Any], dialect: Dialect, dbapi_type: Any
) -> Callable[[Any], Any] | None:
    """What ``coltype``'s result processor does to a fetched value, for the raw read paths
    (:meth:`~kneo.store.wire.dialects.StoreDialect.result`); ``None``: take it as is. Kneo's own
    types directly: adapting a :class:`TypeDecorator` to the dialect costs more than a
    first read's every other step."""
    if isinstance(coltype, JSONText):
        return _stored_json
    if isinstance(coltype, UTCDateTime):
        return _stored_utc
    return coltype.dialect_impl(dialect).result_processor(dialect, dbapi_type)


metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
#: A search term (``kneo.store.tasks.search``): up to 40 characters, and up to 8 more for a
#: project other than the default's prefix (:func:`~kneo.store.tasks.search.scoped_term`).
#: Declared 40 on SQLite, which never enforces a length: the migration that widened it
#: (0026) rewrote neither big table there; PostgreSQL widens a ``varchar`` in its catalog.
Term = sa.String(40).with_variant(sa.String(48), "postgresql")


def project_column(*, key: bool = False, nullable: bool = False) -> sa.Column[int]:
    """``project_id``: the project a row belongs to (``projects.id``; migration 0026), first
    of the primary key when ``key``. Every row written before projects is the default
    project's, the server default; SQLite stores the integer 1 in no payload byte (its
    record header says "1")."""
    if nullable:
        return sa.Column("project_id", sa.Integer)
    default = sa.text(str(DEFAULT_PROJECT_ID))
    return sa.Column(
        "project_id", sa.Integer, nullable=False, server_default=default, primary_key=key,
        autoincrement=False,
    )  # fmt: skip


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

project_metadata = sa.Table(
    "project_metadata",
    metadata,
    project_column(key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("value", JSONText),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

# --- registry (GitOps controller) -------------------------------------------------------

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


def use_postgresql_options() -> None:
    """Give every partial index its ``WHERE`` on PostgreSQL too: the tables declare it once,
    as SQLite's option, because naming a PostgreSQL option here would import that whole
    dialect, which SQLite-only processes never need (called when a PostgreSQL store opens;
    idempotent)."""
    for table in metadata.tables.values():
        for index in table.indexes:
            where = index.dialect_options["sqlite"]["where"]
            if where is not None:
                index.dialect_options["postgresql"]["where"] = where


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

# --- notifications (outbox; migration 0010) ---------------------------------------------

# One row per notifiable event, written in the same transaction as the event itself (an
# audit event's id, or a deterministic id for a sweep's ``human.expiring``), so a crash can
# neither lose nor invent one. ``routed`` turns true when the dispatcher has fanned the
# event out to the matching receivers' ``notifications`` rows (one transaction too).
notification_events = sa.Table(
    "notification_events",
    metadata,
    sa.Column("event_id", sa.String(128), primary_key=True),
    sa.Column("event_type", sa.String(64), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("environment", sa.String(128)),
    sa.Column("assignee", sa.String(255)),
    sa.Column("actor", sa.String(255)),
    sa.Column("run_id", sa.String(128)),
    sa.Column("continuation_id", sa.String(128)),
    sa.Column("payload", JSONText, nullable=False),
    sa.Column("routed", sa.Boolean, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    project_column(),  # (routing is global: each event says whose it is)
    sa.Index(None, "routed", "created_at"),
)

# One delivery per (event, receiver): ``pending`` (due at ``available_at``), ``sending``
# (leased to ``lease_owner`` until ``lease_expires_at``), ``sent`` or ``dead``.
notifications = sa.Table(
    "notifications",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column(
        "event_id",
        sa.String(128),
        sa.ForeignKey("notification_events.event_id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("receiver", sa.String(128), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("available_at", UTCDateTime, nullable=False),
    sa.Column("lease_owner", sa.String(255)),
    sa.Column("lease_expires_at", UTCDateTime),
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("sent_at", UTCDateTime),
    # the event's continuation id: a task's deliveries to a receiver go in order (0016)
    sa.Column("task", sa.String(128)),
    project_column(),  # its event's (0026)
    sa.UniqueConstraint("event_id", "receiver"),
    sa.Index(None, "status", "available_at"),
    sa.Index(None, "receiver", "task", "id"),
)

# --- A2A push notification configs (0025) -----------------------------------------------

# One row per push config an A2A client set on a task (a run), its owner the caller who set
# it: the URL's origin (on the operator's allow-list when set) and the authentication scheme
# in clear, the URL itself (its path may be a capability), the token and the credentials
# sealed (``kneo.platform.a2a_push.seal``; never in clear). The push
# sweep compares ``pushed_status`` with the run's status: a change is one outbox event,
# written under a compare-and-set on ``pushed_seq`` (one event per change, however many
# replicas sweep); ``done`` once a final state is pushed, which the sweep's index skips.
a2a_push_configs = sa.Table(
    "a2a_push_configs",
    metadata,
    sa.Column("push_id", sa.String(64), primary_key=True),
    sa.Column("run_id", sa.String(128), nullable=False),
    sa.Column("config_id", sa.String(128), nullable=False),
    sa.Column("owner", sa.String(255), nullable=False),
    sa.Column("origin", sa.String(512), nullable=False),
    sa.Column("auth_scheme", sa.String(64)),
    sa.Column("sealed", sa.Text, nullable=False),
    # whether the owner could read human tasks when it set the config: a push carries the
    # pending request's question only then, as GetTask would
    sa.Column("sees_requests", sa.Boolean, nullable=False),
    sa.Column("pushed_status", sa.String(32)),
    sa.Column("pushed_seq", sa.Integer, nullable=False),
    sa.Column("done", sa.Boolean, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    project_column(),  # its run's (0026); the push sweep is global
    sa.UniqueConstraint("run_id", "owner", "config_id"),
    sa.Index(None, "done", "run_id"),
)
