"""The inbox's reads: pending tasks (continuations) by id and by request, filtered, searched
and paged in the inbox's order, and the counts the inbox shows.

Every page is a walk of an index in the inbox's order (``(status, created_at,
continuation_id)``, a filter's own, or a search word's or label's ``continuation_terms``
rows: :mod:`kneo.store.search`); the writes that keep those rows are
:mod:`kneo.store.continuation_writes`'.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from kneo.errors import InvalidRequest
from kneo.store import rows
from kneo.store import tables as t
from kneo.store.base import (
    SortOrder,
    StoreBase,
    check_page,
    count_rows,
    get_by_key,
    keyset_page,
    not_found_error,
    one_of_cursor_offset,
    page_walk,
)
from kneo.store.records import ContinuationRecord, Page
from kneo.store.search import ASSIGNEE, KIND, PROMOTION, label

_GET_CONTINUATION = get_by_key(t.continuations, "continuation_id")


def _filter_labels(
    status: str | None, assignee: str | tuple[str, ...] | None, kind: str | None
) -> tuple[list[str], list[str]]:
    """The labels of the inbox's assignee and kind filters (only pending tasks have them):
    every one of the first list, any one of the second (a person and their groups)."""
    labels: list[str] = []
    either: list[str] = []
    if status == "pending":
        if isinstance(assignee, tuple):
            either = [label(ASSIGNEE, a) for a in dict.fromkeys(assignee)]
        elif assignee is not None:
            labels.append(label(ASSIGNEE, assignee))
        if kind is not None and kind != PROMOTION:
            labels.append(label(KIND, kind))
        if len(either) == 1:
            labels, either = [*either, *labels], []
    return labels, either


#: Pending requests per assignee, each counted up to ``:n`` rows: a recursive walk from
#: one assignee to the next in the ``(status, assignee)`` index (each step one seek), then a
#: bounded count per assignee, and the unassigned.
_CAPPED_COUNTS = sa.text(
    "WITH RECURSIVE names(assignee) AS ("
    " SELECT min(assignee) FROM continuation_requests WHERE status = 'pending'"
    " UNION ALL"
    " SELECT (SELECT min(r.assignee) FROM continuation_requests r"
    "  WHERE r.status = 'pending' AND r.assignee > names.assignee)"
    " FROM names WHERE names.assignee IS NOT NULL)"
    " SELECT assignee, (SELECT count(*) FROM (SELECT 1 AS one FROM continuation_requests r"
    "  WHERE r.status = 'pending' AND r.assignee = names.assignee LIMIT :n) AS found)"
    " FROM names WHERE assignee IS NOT NULL"
    " UNION ALL"
    " SELECT NULL, (SELECT count(*) FROM (SELECT 1 AS one FROM continuation_requests r"
    "  WHERE r.status = 'pending' AND r.assignee IS NULL LIMIT :n) AS found)"
)


#: Rows a search counts per word to find its rarest (see ``Store._searched``).
_RARE = 5000


class ContinuationReadsMixin(StoreBase):
    """The inbox's reads on the Store."""

    def get_continuation(self, continuation_id: str) -> ContinuationRecord:
        with self._read() as conn:
            row = (
                conn.execute(_GET_CONTINUATION, {"continuation_id": continuation_id})
                .mappings()
                .first()
            )
        if row is None:
            raise not_found_error("continuation", continuation_id)
        return rows.continuation(row)

    def find_continuation_by_request(self, request_id: str) -> ContinuationRecord:
        """The continuation holding ``request_id`` (request ids are unique by construction)."""
        r = t.continuation_requests.c
        with self._read() as conn:
            cid = conn.execute(
                sa.select(r.continuation_id).where(r.request_id == request_id)
            ).scalar()
        if cid is None:
            raise not_found_error("request", request_id)
        return self.get_continuation(cid)

    def _continuation_filters(
        self,
        *,
        status: str | None,
        run_id: str | None,
        workflow_kind: str | None,
        assignee: str | tuple[str, ...] | None,
        kind: str | None,
        escalated: bool | None,
        older_than: datetime | None,
        expires_before: datetime | None = None,
        workflow_name: str | None = None,
        environment: str | None = None,
    ) -> list[Any]:
        c = t.continuations.c
        r = t.continuation_requests.c
        where: list[Any] = []
        if status is not None:
            where.append(c.status == status)
        if run_id is not None:
            where.append(c.run_id == run_id)
        if workflow_kind is not None:
            where.append(c.workflow_kind == workflow_kind)
        if workflow_name is not None:
            where.append(c.workflow_name == workflow_name)
        if environment is not None:
            where.append(c.environment == environment)
        if escalated is not None:
            where.append(c.escalated_at.is_not(None) if escalated else c.escalated_at.is_(None))
        if older_than is not None:
            where.append(c.created_at < older_than)
        if expires_before is not None:
            where.append(c.expires_at <= expires_before)
        if kind == PROMOTION:
            where.append(c.workflow_kind == PROMOTION)
            kind = None
        elif kind is not None:  # a promotion asks for an approval, but is not one
            where.append(sa.or_(c.workflow_kind.is_(None), c.workflow_kind != PROMOTION))
        if assignee is not None or kind is not None:
            sub = sa.select(r.continuation_id).where(
                r.continuation_id == c.continuation_id, r.status == "pending"
            )
            if isinstance(assignee, tuple):  # any of these (a person, their groups)
                sub = sub.where(r.assignee.in_(assignee))
            elif assignee is not None:
                sub = sub.where(r.assignee == assignee)
            if kind is not None:
                sub = sub.where(r.kind == kind)
            # ``OFFSET 0`` keeps PostgreSQL from turning the probe into a hash semi-join over
            # every task: the page walks the inbox's order and probes each task's requests
            # (its primary key), whatever the statistics say
            where.append(sa.exists(sub.offset(0)))
        return where

    def list_continuations(
        self,
        *,
        status: str | None = "pending",
        run_id: str | None = None,
        workflow_kind: str | None = None,
        assignee: str | tuple[str, ...] | None = None,
        kind: str | None = None,
        escalated: bool | None = None,
        older_than: datetime | None = None,
        expires_before: datetime | None = None,
        workflow_name: str | None = None,
        environment: str | None = None,
        sort: Literal["oldest", "newest"] = "oldest",
        limit: int = 50,
        offset: int = 0,
        cursor: str | None = None,
        count: bool = True,
        search: Sequence[str] = (),
    ) -> Page[ContinuationRecord]:
        """Continuations (pending by default) filtered as the human task inbox needs.

        ``assignee``/``kind`` match continuations with a *pending* request of that
        assignee/kind (``kind="promotion"``: the promotions); ``workflow_name``/
        ``environment`` the run's labels (a promotion's bundle and environment);
        ``older_than``/``expires_before`` bound ``created_at``/``expires_at`` (the timeout
        sweep). Keyset paging by ``(created_at, continuation_id)``: ``next_cursor``, passed
        back as ``cursor``, continues after the page's last row at the same cost however
        deep (not combined with ``offset``). ``count=False`` leaves ``total`` out.
        ``search`` words (:func:`kneo.store.search.query_terms`) keep the tasks holding all
        of them, walking the rarest word's index rows in this order; assignee and kind
        walk their labels' rows the same way, an assignee tuple (a person and their
        groups) each one's, merged.
        """
        check_page(limit, offset)
        if sort not in ("oldest", "newest"):
            raise InvalidRequest(f"sort must be 'oldest' or 'newest', got {sort!r}", field="sort")
        one_of_cursor_offset(cursor, offset)
        order: SortOrder = "asc" if sort == "oldest" else "desc"
        c = t.continuations.c
        where = self._continuation_filters(
            status=status,
            run_id=run_id,
            workflow_kind=workflow_kind,
            assignee=assignee,
            kind=kind,
            escalated=escalated,
            older_than=older_than,
            expires_before=expires_before,
            workflow_name=workflow_name,
            environment=environment,
        )
        labels, either = _filter_labels(status, assignee, kind)
        others = (run_id, workflow_kind, escalated, older_than, expires_before, workflow_name,
                  environment)  # fmt: skip
        cap = self.settings.limits.max_list_count
        with self._read(snapshot=False) as conn:  # page and count need no shared snapshot
            if either:
                found, total, capped, next_cursor = self._either_page(
                    conn, where, either, [*labels, *search], order, limit=limit, offset=offset,
                    cursor=cursor, count=count, cap=cap,
                )  # fmt: skip
            else:
                page_where, columns = where, (c.created_at, c.continuation_id)
                if search or labels:
                    lead = None if search else labels[0]
                    page_where, columns = self._searched(conn, where, [*labels, *search], lead)
                counted = None
                if count and not search and len(labels) == 1 and all(o is None for o in others):
                    # a label's rows are its pending tasks, once each: count those alone
                    lead_rows = [t.continuation_terms.c.term == labels[0]]
                    counted = count_rows(conn, t.continuation_terms, lead_rows, cap)
                found, total, capped, next_cursor = keyset_page(
                    conn, t.continuations, page_where, columns, order, limit=limit,
                    offset=offset, cursor=cursor, count=count and counted is None, cap=cap,
                )  # fmt: skip
                if counted is not None:
                    total, capped = counted
        items = [rows.continuation(r) for r in found]
        return Page(items, total, limit, offset, "created_at", order, next_cursor, capped)

    def _either_page(
        self,
        conn: Connection,
        where: list[Any],
        either: Sequence[str],
        every: Sequence[str],
        order: SortOrder,
        *,
        limit: int,
        offset: int,
        cursor: str | None,
        count: bool,
        cap: int | None,
    ) -> tuple[list[Any], int | None, bool, str | None]:
        """A page of the tasks holding any label of ``either`` (and every term of ``every``):
        each label's rows walked in the inbox's order up to the page's end, the walks merged
        by that order (a task of two of them once). So "mine", a person and their groups,
        costs a page per label, not a walk of every pending task. ``total`` is counted by
        ``where`` (exact; only a caller that asks pays it)."""
        c = t.continuations.c
        branches = []
        for term in either:
            narrowed, columns = self._searched(conn, where, [term, *every], term)
            walk = page_walk(
                sa.select(c.continuation_id), narrowed, columns, order, cursor,
                limit=limit, offset=offset,
            )  # fmt: skip
            branches.append(sa.select(walk.c.continuation_id))
        merged = sa.union_all(*branches).subquery()
        found, _, _, next_cursor = keyset_page(
            conn, t.continuations, [c.continuation_id.in_(sa.select(merged.c.continuation_id))],
            (c.created_at, c.continuation_id), order, limit=limit, offset=offset, cursor=cursor,
        )  # fmt: skip
        total, capped = count_rows(conn, t.continuations, where, cap) if count else (None, False)
        return found, total, capped, next_cursor

    @staticmethod
    def _searched(
        conn: Connection, where: list[Any], search: Sequence[str], lead: str | None = None
    ) -> tuple[list[Any], tuple[Any, ...]]:
        """``where`` narrowed to tasks holding every term of ``search`` (words, labels), and
        the order to page by: the rarest term's ``continuation_terms`` rows (or ``lead``'s),
        whose key is the inbox's order, joined to their tasks; the other terms are probed
        per task by its ``(continuation_id, term)`` index. Which term is rarest is counted up
        to :data:`_RARE` rows each (a term more common than that is as good as any other)."""
        c = t.continuations.c
        k = t.continuation_terms
        words = list(dict.fromkeys(search))
        if lead is not None:
            words.remove(lead)
            words.insert(0, lead)
        elif len(words) > 1:
            counted = {
                w: conn.execute(
                    sa.select(sa.func.count()).select_from(
                        sa.select(k.c.term)
                        .where(k.c.term == w)
                        .order_by(k.c.term, k.c.created_at)  # the key's order: an index walk
                        .limit(_RARE)
                        .subquery()
                    )
                ).scalar_one()
                for w in words
            }
            words.sort(key=counted.__getitem__)
        lead, rest = words[0], words[1:]
        narrowed = [*where, k.c.term == lead, k.c.continuation_id == c.continuation_id]
        for word in rest:
            other = k.alias()
            narrowed.append(
                sa.exists(
                    sa.select(other.c.term).where(
                        other.c.continuation_id == c.continuation_id, other.c.term == word
                    )
                )
            )
        return narrowed, (k.c.created_at, k.c.continuation_id)

    def pending_counts_by_assignee(self, cap: int | None = None) -> dict[str | None, int]:
        """Pending requests of pending continuations per assignee (``None`` = unassigned),
        from the ``(status, assignee)`` index (a request row is pending only while its
        continuation is, see ``continuation_request_rows``). Without ``cap``: one scan of
        every pending row. With it, each assignee is counted up to ``cap + 1`` (a count above
        ``cap`` means "more than ``cap``"): the assignees are found by skipping from one to
        the next in the index, so this reads at most (assignees) x (``cap`` + 1) rows however
        many tasks are pending."""
        r = t.continuation_requests.c
        with self._read() as conn:
            if cap is None:
                stmt = (
                    sa.select(r.assignee, sa.func.count())
                    .where(r.status == "pending")
                    .group_by(r.assignee)
                )
                return {assignee: int(n) for assignee, n in conn.execute(stmt)}
            found = conn.execute(_CAPPED_COUNTS, {"n": cap + 1})
            return {assignee: int(n) for assignee, n in found if n}

    def inbox_version(self) -> int:
        """A number that changes whenever the inbox may have: the newest audit event's id
        (every pause, decision, expiry, escalation and promotion is audited, in the
        transaction that makes it). One primary-key lookup, whatever the number of tasks:
        the console's refresh answers ``304`` from it without listing or counting."""
        with self._read() as conn:
            found = conn.execute(sa.select(sa.func.max(t.audit_events.c.id))).scalar()
        return int(found or 0)
