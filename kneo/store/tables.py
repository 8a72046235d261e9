"""SQLAlchemy Core tables: the schema as the code sees it at migration head, gathered from
each room's tables module so callers write ``from kneo.store import tables as t; t.runs``.

Migrations under ``kneo/store/migrations/versions`` are frozen snapshots that build this
schema step by step; ``tests/store/test_migrations.py`` checks both agree. What the tables are
made of is in :mod:`kneo.store.column_types` (JSON as compact text, timestamps UTC-aware
whatever the database stores) and :mod:`kneo.store.table_metadata` (the one ``MetaData``, the
``project_id`` column); the tables of a room, by room: :mod:`~kneo.store.tables_projects`,
:mod:`~kneo.store.tables_runs`, :mod:`~kneo.store.tables_tasks`,
:mod:`~kneo.store.tables_coordination`, :mod:`~kneo.store.tables_registry`,
:mod:`~kneo.store.tables_outbox`. A room whose tables only it reads and writes (rollouts,
schedules, triggers, code files, project limits) defines them in its own module, on the same
``metadata``.
"""

from __future__ import annotations

from kneo.store.column_types import (
    JSONText,
    UTCDateTime,
    epoch_micros,
    value_binder,
    value_reader,
)
from kneo.store.table_metadata import (
    BigId,
    Term,
    metadata,
    project_column,
    use_postgresql_options,
)
from kneo.store.tables_coordination import idempotency_records, locks, queue, seen_callbacks
from kneo.store.tables_outbox import a2a_push_configs, notification_events, notifications
from kneo.store.tables_projects import audit_events, console_sessions, project_metadata, projects
from kneo.store.tables_registry import (
    blocked_digests,
    bundle_conditions,
    bundle_pins,
    bundle_revisions,
    bundle_suspensions,
    controller_requests,
    controller_status,
    one_active_revision,
    promotion_approvals,
    registry_change_counter,
    registry_changes,
)
from kneo.store.tables_runs import (
    FAILED,
    HAS_SESSION,
    SETTLED,
    checkpoints,
    run_terms,
    runs,
    specs,
    trace_events,
)
from kneo.store.tables_tasks import continuation_requests, continuation_terms, continuations

__all__ = [
    "FAILED",
    "HAS_SESSION",
    "SETTLED",
    "BigId",
    "JSONText",
    "Term",
    "UTCDateTime",
    "a2a_push_configs",
    "audit_events",
    "blocked_digests",
    "bundle_conditions",
    "bundle_pins",
    "bundle_revisions",
    "bundle_suspensions",
    "checkpoints",
    "console_sessions",
    "continuation_requests",
    "continuation_terms",
    "continuations",
    "controller_requests",
    "controller_status",
    "epoch_micros",
    "idempotency_records",
    "locks",
    "metadata",
    "notification_events",
    "notifications",
    "one_active_revision",
    "project_column",
    "project_metadata",
    "projects",
    "promotion_approvals",
    "queue",
    "registry_change_counter",
    "registry_changes",
    "run_terms",
    "runs",
    "seen_callbacks",
    "specs",
    "trace_events",
    "use_postgresql_options",
    "value_binder",
    "value_reader",
]
