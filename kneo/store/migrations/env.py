"""Alembic environment for Kneo: runs on the connection the store hands over.

The store (``kneo.store.migrate``) opens the connection, takes the cross-process migration
lock inside an open transaction and passes the connection in ``config.attributes``; this file
only configures the context. Offline (SQL script) mode is not supported: Kneo always migrates
a live database.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from alembic import context
from alembic.runtime.migration import MigrationContext, MigrationInfo

from kneo.store.migrate import VERSION_TABLE
from kneo.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reachable by running alembic by hand
    raise RuntimeError("run migrations through `kneo db upgrade` or kneo.store.migrate")

progress = context.config.attributes.get("progress")


def _applied(
    ctx: MigrationContext, step: MigrationInfo, heads: Collection[Any], run_args: Mapping[str, Any]
) -> None:
    """Tell the caller's ``progress`` that a migration script has run."""
    if progress is not None:
        progress(str(step.up_revision_id))


context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",
    transaction_per_migration=False,
    on_version_apply=_applied,
)
with context.begin_transaction():
    context.run_migrations()
