"""Every list page is a walk of an index in the list's order (keyset paging).

The list routes page by keyset (``cursor``): a page, and the page after any cursor, reads
its own rows from an index that holds the listing's whole order, tie-breaker included, so
neither a page nor a deep one sorts or skips rows.

* ``runs``: ``(created_at)`` becomes ``(created_at, run_id)`` and ``(status, created_at)``
  becomes ``(status, created_at, run_id)`` (newest first, by status, and ``sort_by=status``);
  ``(updated_at, run_id)`` is new (``sort_by=updated_at``).
* ``audit_events``: ``(event_type)`` and ``(run_id)`` gain ``id`` (newest first is ``id``
  descending; SQLite's rowid made this implicit, PostgreSQL's index does not), and
  ``(continuation_id, id)`` is new (the filter had no index).
* ``continuations``: ``(status, workflow_kind, created_at, continuation_id)``, for the
  inbox's promotion filter and workflow kinds.
* ``bundle_revisions``: ``(environment, bundle_name, revision)``, the registry listing of
  one environment in its order (the primary key serves the listing across environments).

PostgreSQL plans from statistics: :func:`kneo.store.migrate.upgrade` runs ``ANALYZE`` after
every upgrade, so a migrated database does not start with plans made for empty tables.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

#: (table, old index columns or None, new index columns)
_CHANGES = (
    ("runs", ("created_at",), ("created_at", "run_id")),
    ("runs", ("status", "created_at"), ("status", "created_at", "run_id")),
    ("runs", None, ("updated_at", "run_id")),
    ("audit_events", ("event_type",), ("event_type", "id")),
    ("audit_events", ("run_id",), ("run_id", "id")),
    ("audit_events", None, ("continuation_id", "id")),
    ("continuations", None, ("status", "workflow_kind", "created_at", "continuation_id")),
    ("bundle_revisions", None, ("environment", "bundle_name", "revision")),
)


def _name(table: str, columns: tuple[str, ...]) -> str:
    name = f"ix_{table}_{'_'.join(columns)}"
    # within PostgreSQL's 63 characters: the tie-breaker is left out of the long one's name
    return name if len(name) <= 63 else name.removesuffix(f"_{columns[-1]}")


def upgrade() -> None:
    for table, old, new in _CHANGES:
        if old is not None:
            op.drop_index(_name(table, old), table)
        op.create_index(_name(table, new), table, list(new))


def downgrade() -> None:
    for table, old, new in reversed(_CHANGES):
        op.drop_index(_name(table, new), table)
        if old is not None:
            op.create_index(_name(table, old), table, list(old))
