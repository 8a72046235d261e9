"""The write unit of work of :meth:`Store.transaction <kneo.store.api.Store.transaction>`.

:class:`Transaction` is :class:`~kneo.store.rawtx.RawTransaction` hosted on a SQLAlchemy
connection: every write the two have in common is that class's one implementation (the
statements built once from the tables, executed on this connection's DBAPI connection, in its
transaction), and this class adds what needs SQLAlchemy Core: row-locking reads, project
metadata and the registry writes
(:class:`~kneo.store.registry.RegistryWritesMixin`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from kneo.store import rows
from kneo.store import tables as t
from kneo.store.base import not_found_error
from kneo.store.rawtx import RawTransaction
from kneo.store.records import ContinuationRecord, RunRecord, TraceEvent
from kneo.store.registry import RegistryWritesMixin
from kneo.store.rowvalues import RUN_MUTABLE_FIELDS

if TYPE_CHECKING:
    from kneo.store.api import Store

__all__ = ["RUN_MUTABLE_FIELDS", "Transaction"]


class Transaction(RawTransaction, RegistryWritesMixin):
    """One unit of work on one connection; obtain it from :meth:`Store.transaction`.

    Every method writes through the same database transaction; nothing is visible to other
    processes until the ``with`` block exits normally, and an exception undoes all of it.
    """

    def __init__(self, store: Store, conn: Connection) -> None:
        self.conn = conn
        super().__init__(store, conn.connection, store.dialect, hosted=True)

    def get_run(self, run_id: str, *, for_update: bool = False) -> RunRecord:
        """The run as this transaction sees it; ``for_update`` row-locks it on PostgreSQL."""
        stmt = sa.select(t.runs).where(t.runs.c.run_id == run_id)
        if for_update:
            stmt = stmt.with_for_update()
        row = self.conn.execute(stmt).mappings().first()
        if row is None:
            raise not_found_error("run", run_id)
        return rows.run(row, rows.spec_reader(self._d, self.conn))

    def request_cancel(self, run_id: str) -> RunRecord:
        """Flag a run for cooperative cancellation.

        Bumps the version on purpose: a worker's next compare-and-set then fails, it re-reads
        the run and sees the request, so a cancelled run is never overwritten as finished.
        """
        return self.update_run(run_id, cancel_requested=True)

    def add_trace_event(
        self,
        run_id: str,
        event_type: str,
        *,
        step_id: str | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> TraceEvent:
        """Append one trace event; see :meth:`add_trace_events` for batches."""
        return self.add_trace_events(
            run_id, [{"event_type": event_type, "step_id": step_id, "payload": payload}]
        )[0]

    # -- continuations -------------------------------------------------------------------
    def get_continuation(
        self, continuation_id: str, *, for_update: bool = False
    ) -> ContinuationRecord:
        """The continuation as this transaction sees it (row-locked on PostgreSQL if asked)."""
        stmt = sa.select(t.continuations).where(
            t.continuations.c.continuation_id == continuation_id
        )
        if for_update:
            stmt = stmt.with_for_update()
        row = self.conn.execute(stmt).mappings().first()
        if row is None:
            raise not_found_error("continuation", continuation_id)
        return rows.continuation(row)

    # -- metadata ----------------------------------------------------------------------
    def set_metadata(self, key: str, value: Any) -> None:
        """Upsert one project metadata value (any JSON value)."""
        ins = self._store.dialect.insert(t.project_metadata).values(
            key=key, value=value, updated_at=self.now
        )
        self.conn.execute(
            ins.on_conflict_do_update(
                index_elements=["key"], set_={"value": ins.excluded.value, "updated_at": self.now}
            )
        )

    def delete_metadata(self, key: str) -> bool:
        result = self.conn.execute(
            sa.delete(t.project_metadata).where(t.project_metadata.c.key == key)
        )
        return result.rowcount == 1
