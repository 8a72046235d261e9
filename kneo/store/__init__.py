"""Persistence: one Store over SQLite (default) or PostgreSQL, with Alembic migrations.

Holds the SQLAlchemy tables, the :class:`Store` API (runs, checkpoints, trace events,
continuations, audit, queue with leases, locks, idempotency records, project metadata, the
GitOps registry) as facets of it, one per concern (``store.runs``, ``store.registry``, ...),
retention and backup. A store is one project's view (``store.for_project(name)``: the unit of
tenancy); :func:`open_store` returns the ``default`` project's. It imports only SQLAlchemy,
Alembic (lazily, when a migration is due) and Kneo's foundation modules (errors, settings,
clock, ids, redaction, projects); never the engine, platform, service, controller or CLI.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from kneo.clock import Clock, SystemClock
from kneo.settings import Settings
from kneo.store.api import Store, Transaction
from kneo.store.maintenance.retention import (
    RETENTION_CATEGORIES,
    backup_sqlite_database,
    restore_sqlite_database,
)
from kneo.store.migrate import ensure_schema
from kneo.store.outbox.notifications import DeliveryOutcome, NotificationEvent, NotificationRecord
from kneo.store.projects import ProjectRecord
from kneo.store.queries import (
    AuditQuery,
    NotificationQuery,
    RegistryQuery,
    RolloutQuery,
    RunQuery,
    TaskQuery,
)
from kneo.store.records import (
    TERMINAL_RUN_STATUSES,
    AuditEvent,
    BlockedDigest,
    BundleRevision,
    CheckpointRecord,
    Condition,
    ContinuationRecord,
    ControllerRequest,
    ControllerRequestCounts,
    ControllerStatus,
    Holds,
    IdempotencyOutcome,
    LockRecord,
    Page,
    Pin,
    PromotionApproval,
    QueueRecord,
    RevisionHead,
    RunLease,
    RunRecord,
    StrandedRun,
    Suspension,
    TraceEvent,
)
from kneo.store.tables import metadata
from kneo.store.wire import tenancy
from kneo.store.wire.dialects import dialect_for
from kneo.store.wire.urls import parse_database_url

DEFAULT_STATE_DIR = Path(".kneo")
DEFAULT_SQLITE_NAME = "kneo_runs.sqlite"

__all__ = [
    "DEFAULT_SQLITE_NAME",
    "DEFAULT_STATE_DIR",
    "RETENTION_CATEGORIES",
    "TERMINAL_RUN_STATUSES",
    "AuditEvent",
    "AuditQuery",
    "BlockedDigest",
    "BundleRevision",
    "CheckpointRecord",
    "Condition",
    "ContinuationRecord",
    "ControllerRequest",
    "ControllerRequestCounts",
    "ControllerStatus",
    "DeliveryOutcome",
    "Holds",
    "IdempotencyOutcome",
    "LockRecord",
    "NotificationEvent",
    "NotificationQuery",
    "NotificationRecord",
    "Page",
    "Pin",
    "ProjectRecord",
    "PromotionApproval",
    "QueueRecord",
    "RegistryQuery",
    "RevisionHead",
    "RolloutQuery",
    "RunLease",
    "RunQuery",
    "RunRecord",
    "Store",
    "StrandedRun",
    "Suspension",
    "TaskQuery",
    "TraceEvent",
    "Transaction",
    "backup_sqlite_database",
    "open_store",
    "parse_database_url",
    "resolve_url",
    "restore_sqlite_database",
]


def resolve_url(url: str | None, *, state_dir: Path | None = None) -> sa.URL:
    """The database URL to use: ``url`` if given, else SQLite at ``<state_dir>/kneo_runs.sqlite``.

    A malformed URL is a ``config_error`` naming ``KNEO_SERV_DATABASE_URL``.
    """
    if url:
        parsed = parse_database_url(url)
        if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() != "psycopg":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return parsed
    directory = state_dir or DEFAULT_STATE_DIR
    return sa.URL.create("sqlite", database=str(directory / DEFAULT_SQLITE_NAME))


def open_store(
    url: str | None = None,
    *,
    settings: Settings | None = None,
    clock: Clock | None = None,
    state_dir: Path | None = None,
    migrate: bool = True,
) -> Store:
    """Open (creating and migrating as needed) the store at ``url``.

    ``url=None`` means SQLite at ``<state_dir or .kneo>/kneo_runs.sqlite`` (the directory is
    created). Migrations run on open unless ``migrate=False``; concurrent openers are safe.
    """
    settings = settings or Settings()
    parsed = resolve_url(url, state_dir=state_dir)
    dialect = dialect_for(
        parsed,
        sqlite_synchronous=settings.sqlite_synchronous,
        pool_size=settings.pool_size(),
        transaction_pooler=settings.database_pooler == "transaction",
    )
    if dialect.name == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = dialect.create_engine(parsed)
    store = Store(engine, dialect, settings=settings, clock=clock or SystemClock())
    if migrate:
        try:
            with store._db_errors():
                ensure_schema(engine, dialect)
        except BaseException:
            engine.dispose()
            raise
    tenancy.learn_tables(metadata.tables.values())
    tenancy.watch(engine)
    return store
