"""The audit log's reads (``store.audit``): a project's audit events, newest first, and one
by its id. Events are written by the transactions that change what they record
(:mod:`kneo.store.transaction`), never here."""

from __future__ import annotations

import sqlalchemy as sa

from kneo.store import row_records
from kneo.store import tables as t
from kneo.store.base import (
    Facet,
    count_reach,
    given,
    keyset_page,
    not_found_error,
)
from kneo.store.queries import AuditQuery
from kneo.store.records import AuditEvent, Page


class AuditFacet(Facet):
    """The audit log (``store.audit``)."""

    # -- audit ---------------------------------------------------------------------
    def list_audit(self, query: AuditQuery = AuditQuery()) -> Page[AuditEvent]:
        """Audit events of ``query``, newest first (by ``id``: an index's order under every
        filter); ``next_cursor``/``cursor`` and ``count`` as in :meth:`list_runs`."""
        q = query
        limit, offset, cursor = q.limit, q.offset, q.cursor
        a = t.audit_events.c
        where = [
            a.project_id == self.project_id,
            *given((a.event_type, q.event_type), (a.run_id, q.run_id),
                   (a.continuation_id, q.continuation_id)),
        ]  # fmt: skip
        columns = (a.id,)
        with self._read() as conn:
            found, total, capped, next_cursor = keyset_page(
                conn, t.audit_events, where, columns, "desc", limit=limit, offset=offset,
                cursor=cursor, count=q.count,
                cap=count_reach(self.settings.limits.max_list_count, offset, limit),
            )  # fmt: skip
        items = [row_records.audit(r) for r in found]
        return Page(items, total, limit, offset, "created_at", "desc", next_cursor, capped)

    def get_audit(self, event_id: str) -> AuditEvent:
        """One audit event by its ``event_id``; ``NotFound`` when there is none."""
        with self._read() as conn:
            row = (
                conn.execute(
                    sa.select(t.audit_events).where(
                        t.audit_events.c.event_id == event_id,
                        t.audit_events.c.project_id == self.project_id,
                    )
                )
                .mappings()
                .first()
            )
        if row is None:
            raise not_found_error("audit event", event_id)
        return row_records.audit(row)


__all__ = ["AuditFacet"]
