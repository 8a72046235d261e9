"""The registry's statements, built in SQLAlchemy Core from the :mod:`~kneo.store.tables`
objects; each builder runs once per store, on the first use of its statement.

A transaction (:class:`~kneo.store.registry.writes.RegistryWritesMixin`) runs its writes on
the DBAPI cursor: the dialect compiles them once into its statement cache
(:meth:`~kneo.store.wire.statement_cache.StatementCache.text`). The Store's point reads
(:class:`~kneo.store.registry.reads.RegistryFacet`) keep theirs built
(:meth:`~kneo.store.wire.statement_cache.StatementCache.memo`) and run them on a SQLAlchemy
connection, which compiles each once (its compiled cache). Every parameter is a named
:func:`~sqlalchemy.bindparam` (``:name``, the keys of the values the caller binds); constants
are literal SQL, so nothing is bound that the caller does not pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.expression import ColumnClause, ColumnElement, Select, Update

from kneo.store import tables as t
from kneo.store.wire import statements as st
from kneo.store.wire.dialects import StoreDialect

_R = t.bundle_revisions.c

#: a registry key's columns: (project, bundle, environment); the project is a parameter as
#: the others are (``:project_id``), so one statement serves every project
KEY = ("project_id", "bundle_name", "environment")
#: one revision's
REVISION_KEY = (*KEY, "revision")
#: a project's rows
PROJECT_KEY = ("project_id",)

ACTIVE: ColumnClause[str] = sa.literal_column("'active'")


def where(table: sa.Table, names: Sequence[str] = KEY) -> list[ColumnElement[bool]]:
    """``column = :column`` for each of ``names``."""
    return [table.c[n] == sa.bindparam(n) for n in names]


def select(table: sa.Table, names: Sequence[str] = KEY, *, lock: bool = False) -> Select[Any]:
    """All of ``table``'s columns of the rows whose ``names`` are the parameters';
    ``lock``: row-locked where the database has row locks (SQLite's write lock does)."""
    stmt = sa.select(table).where(*where(table, names))
    return stmt.with_for_update() if lock else stmt


def delete(table: sa.Table, names: Sequence[str] = KEY) -> Any:
    """Delete the rows whose ``names`` are the parameters, returning the first key column."""
    return sa.delete(table).where(*where(table, names)).returning(table.c[names[0]])


def insert(
    dialect: StoreDialect,
    table: sa.Table,
    returning: str,
    *,
    names: Sequence[str] | None = None,
    conflict: Sequence[str] | None = None,
    update: Sequence[str] = (),
) -> Any:
    """One row of ``table``'s ``names`` (default: every column but an autoincrementing key),
    returning its ``returning`` column. ``conflict``: skip the row when it would violate a
    unique constraint (``()``: any), or, with ``update``, set those columns from the new row
    on the conflicting one instead."""
    stmt = dialect.insert(table).values({n: sa.bindparam(n) for n in names or st.columns(table)})
    if conflict is not None:
        if update:
            stmt = stmt.on_conflict_do_update(
                index_elements=[table.c[n] for n in conflict],
                set_={n: stmt.excluded[n] for n in update},
            )
        else:
            stmt = stmt.on_conflict_do_nothing()
    return stmt.returning(table.c[returning])


# -- revisions -----------------------------------------------------------------------------
def head() -> Select[Any]:
    """The key's last revision number and its active one (each ``NULL`` if none).

    Two scalar subqueries, each a seek: the last number on the primary key, the active one on
    the one-active index. As one aggregate over the key's rows (``max(CASE ...)``), SQLite
    chose the covering ``(project_id, status, ...)`` index and walked every revision of the
    project: a cold reconcile of 10,000 bundles spent a third of its time there."""
    last = sa.select(sa.func.max(_R.revision)).where(*where(t.bundle_revisions))
    active = sa.select(_R.revision).where(*where(t.bundle_revisions), _R.status == ACTIVE)
    return sa.select(last.scalar_subquery(), active.scalar_subquery())


def active_revision() -> Select[Any]:
    """The key's active revision (at most one)."""
    return select(t.bundle_revisions).where(_R.status == ACTIVE)


def deactivate() -> Update:
    """The key's active revision becomes inactive at ``:deactivated_at``."""
    return (
        sa.update(t.bundle_revisions)
        .values(
            status=sa.literal_column("'inactive'"), deactivated_at=sa.bindparam("deactivated_at")
        )
        .where(*where(t.bundle_revisions), _R.status == ACTIVE)
    )


def update_revision(names: Sequence[str]) -> Update:
    """Set ``names`` on one revision, returning its number (no row: it does not exist)."""
    return (
        sa.update(t.bundle_revisions)
        .values({n: sa.bindparam(n) for n in names})
        .where(*where(t.bundle_revisions, REVISION_KEY))
        .returning(_R.revision)
    )


# -- changes, conditions, approvals --------------------------------------------------------
def next_change_number(dialect: StoreDialect) -> Any:
    """Take the project's next registry change number (its counter row, created at 1)."""
    counter = t.registry_change_counter
    one: ColumnClause[int] = sa.literal_column("1")
    return (
        dialect.insert(counter)
        .values(project_id=sa.bindparam("project_id"), seq=one)
        .on_conflict_do_update(
            index_elements=[counter.c.project_id], set_={"seq": counter.c.seq + one}
        )
        .returning(counter.c.seq)
    )


def change_number() -> Select[Any]:
    """The project's last registry change number handed out (no row before the first)."""
    counter = t.registry_change_counter
    return sa.select(counter.c.seq).where(*where(counter, PROJECT_KEY))


def changed_since() -> Select[Any]:
    """The project's bundles changed outside the controller after change number ``:seq``."""
    changes = t.registry_changes
    return sa.select(changes.c.bundle_name).where(
        *where(changes, PROJECT_KEY), changes.c.seq > sa.bindparam("seq")
    )


def blocked_digests() -> Select[Any]:
    """Every digest the project blocked, oldest block first."""
    b = t.blocked_digests
    return sa.select(b).where(*where(b, PROJECT_KEY)).order_by(b.c.created_at, b.c.digest)


def update_condition() -> Update:
    """One condition's observed state, by (bundle, environment, type)."""
    sets = ("status", "reason", "message", "last_transition_time", "updated_at")
    return (
        sa.update(t.bundle_conditions)
        .values({n: sa.bindparam(n) for n in sets})
        .where(*where(t.bundle_conditions, (*KEY, "type")))
    )


def approvals(by_digest: bool) -> Select[Any]:
    """A key's promotion decisions (``by_digest``: on ``:digest`` only), oldest first."""
    names = (*KEY, "digest") if by_digest else KEY
    return select(t.promotion_approvals, names).order_by(t.promotion_approvals.c.id)
