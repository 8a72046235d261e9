"""The inbox's reads: pending tasks (continuations) by id and by request, filtered, searched
and paged in the inbox's order, and the counts the inbox shows.

Every page is a walk of an index in the inbox's order (``(project_id, status, created_at,
continuation_id)``, a filter's own, or a search word's or label's ``continuation_terms``
rows: :mod:`kneo.store.tasks.search`); the writes that keep those rows are
:mod:`kneo.store.tasks.writes`'.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from kneo.errors import InvalidRequest
from kneo.lifecycle import TaskStatus
from kneo.store import row_records
from kneo.store import tables as t
from kneo.store.base import (
    Facet,
    SortOrder,
    count_reach,
    count_rows,
    get_by_key,
    keyset_after,
    keyset_page,
    not_found_error,
    ordered,
    page_total,
    page_walk,
)
from kneo.store.list_counts import TASKS, counted_total
from kneo.store.queries import TaskQuery
from kneo.store.records import ContinuationRecord, Page
from kneo.store.tasks.search import ASSIGNEE, KIND, PROMOTION, label, scoped_term
from kneo.store.wire.pg_hooks import PLAN_PER_CALL

_GET_CONTINUATION = get_by_key(t.continuations, "continuation_id")
#: a list's ``total`` (and whether capped) from the counters, on the page's connection,
#: given the page's rows and whether more follow
_Counter = Callable[[Connection, int, bool], tuple[int, bool]]


def _filter_labels(
    project_id: int,
    status: str | None,
    assignee: str | tuple[str, ...] | None,
    kind: str | None,
    search: Sequence[str],
) -> tuple[list[str], list[str], list[str]]:
    """The labels of the inbox's assignee and kind filters (only pending tasks have them):
    every one of the first list, any one of the second (a person and their groups); and the
    ``search`` words. All three as project ``project_id``'s rows hold them."""
    labels: list[str] = []
    either: list[str] = []
    if status == TaskStatus.PENDING:
        if isinstance(assignee, tuple):
            either = [scoped_term(project_id, label(ASSIGNEE, a)) for a in dict.fromkeys(assignee)]
        elif assignee is not None:
            labels.append(scoped_term(project_id, label(ASSIGNEE, assignee)))
        if kind is not None and kind != PROMOTION:
            labels.append(scoped_term(project_id, label(KIND, kind)))
        if len(either) == 1:
            labels, either = [*either, *labels], []
    return labels, either, [scoped_term(project_id, word) for word in search]


def _approver_of(project_id: int, assignee: str | tuple[str, ...]) -> Any:
    """A pending promotion (freeze override, rollback) whose approvers name ``assignee``
    (any of a tuple): its approvers are assignee labels of it
    (:func:`kneo.store.tasks.search.task_labels`), probed by the task's
    ``(continuation_id, term)`` index; a request row has one assignee and a promotion's request
    none."""
    c = t.continuations.c
    k = t.continuation_terms.alias().c  # the page may walk continuation_terms itself
    names = assignee if isinstance(assignee, tuple) else (assignee,)
    labels = [scoped_term(project_id, label(ASSIGNEE, a)) for a in dict.fromkeys(names)]
    probe = sa.select(k.term).where(k.continuation_id == c.continuation_id, k.term.in_(labels))
    return sa.and_(c.workflow_kind == PROMOTION, sa.exists(probe.offset(0)))


#: A project's pending requests per assignee, each counted up to ``:n`` rows: a recursive
#: walk from one assignee to the next in the ``(project_id, status, assignee)`` index (each
#: step one seek), then a bounded count per assignee, and the unassigned.
_CAPPED_COUNTS = sa.text(
    "WITH RECURSIVE names(assignee) AS ("
    " SELECT min(assignee) FROM continuation_requests"
    "  WHERE project_id = :project_id AND status = 'pending'"
    " UNION ALL"
    " SELECT (SELECT min(r.assignee) FROM continuation_requests r"
    "  WHERE r.project_id = :project_id AND r.status = 'pending'"
    "  AND r.assignee > names.assignee)"
    " FROM names WHERE names.assignee IS NOT NULL)"
    " SELECT assignee, (SELECT count(*) FROM (SELECT 1 AS one FROM continuation_requests r"
    "  WHERE r.project_id = :project_id AND r.status = 'pending'"
    "  AND r.assignee = names.assignee LIMIT :n) AS found)"
    " FROM names WHERE assignee IS NOT NULL"
    " UNION ALL"
    " SELECT NULL, (SELECT count(*) FROM (SELECT 1 AS one FROM continuation_requests r"
    "  WHERE r.project_id = :project_id AND r.status = 'pending'"
    "  AND r.assignee IS NULL LIMIT :n) AS found)"
)


#: Rows a search first counts per word to find its rarest (see :func:`_rarity`).
_RARE = 5000
#: How much further each next round of :func:`_rarity` counts.
_RARER = 4
#: How many pages' rows of the rarest of common words a search walks before it joins the
#: words' whole rows (:meth:`TasksFacet._term_page`).
_REACH = 8


def _rarity(conn: Connection, words: Sequence[str], *, once: bool = False) -> dict[str, int]:
    """Each word's rows counted up to a bound, enough to tell which is rarest: first up to
    :data:`_RARE` each; while every word reaches the bound, again up to :data:`_RARER` times
    as many. So two common words are told apart however common (walking the first one's
    rows because both passed 5,000 once walked every pending task for a word in half of
    them), and the counting stops at a few times the rarest word's rows (index entries
    only, no task read), the walk's own bound. ``once``: the first round only (a bounded
    walk's lead: :meth:`TasksFacet._term_page`; words in every task are not counted whole
    to page a few of them)."""
    k = t.continuation_terms
    bound = _RARE
    while True:
        counted = {
            w: conn.execute(
                sa.select(sa.func.count()).select_from(
                    sa.select(k.c.term)
                    .where(k.c.term == w)
                    .order_by(k.c.term, k.c.created_at)  # the key's order: an index walk
                    .limit(bound)
                    .subquery()
                ),
                execution_options={PLAN_PER_CALL: True},  # planned with the word, as the page
            ).scalar_one()
            for w in words
        }
        if once or min(counted.values()) < bound:
            return counted
        bound *= _RARER


def _lead_walk(
    where: list[Any], lead: str, rest: Sequence[str], reach: tuple[SortOrder, str | None, int]
) -> tuple[list[Any], tuple[Any, ...]]:
    """``where`` narrowed to the tasks among ``lead``'s first rows after the cursor (as many
    as ``reach`` says, in its order) holding every word of ``rest`` (probed per task by its
    ``(continuation_id, term)`` index), and the order to page them by: the bounded walk of
    :meth:`TasksFacet._searched`."""
    c = t.continuations.c
    k = t.continuation_terms
    order, cursor, rows = reach
    key = (k.c.created_at, k.c.continuation_id)
    first = (
        sa.select(*key)
        .where(k.c.term == lead, *keyset_after(cursor, order, key))
        .order_by(*(ordered(col, order) for col in key))
        .limit(rows)
        .subquery("lead_rows")
    )
    narrowed = [*where, first.c.continuation_id == c.continuation_id]
    for word in rest:
        other = k.alias()
        probe = sa.select(other.c.term).where(
            other.c.continuation_id == first.c.continuation_id, other.c.term == word
        )
        narrowed.append(sa.exists(probe.offset(0)))
    return narrowed, (first.c.created_at, first.c.continuation_id)


class TasksFacet(Facet):
    """The inbox's reads (``store.tasks``)."""

    def get_continuation(self, continuation_id: str) -> ContinuationRecord:
        params = {"continuation_id": continuation_id, "project_id": self.project_id}
        with self._read() as conn:
            row = conn.execute(_GET_CONTINUATION, params).mappings().first()
        if row is None:
            raise not_found_error("continuation", continuation_id)
        return row_records.continuation(row)

    def _continuation_filters(self, q: TaskQuery) -> list[Any]:
        """The conditions of every filter of ``q`` but the search (its labels are paged)."""
        status, run_id, workflow_kind, assignee, kind = (
            q.status, q.run_id, q.workflow_kind, q.assignee, q.kind
        )  # fmt: skip
        workflow_name, environment, escalated = q.workflow_name, q.environment, q.escalated
        older_than, expires_before = q.older_than, q.expires_before
        c = t.continuations.c
        r = t.continuation_requests.c
        where: list[Any] = [c.project_id == self.project_id]
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
            found: Any = sa.exists(sub.offset(0))
            if assignee is not None and kind is None:  # or a promotion naming it an approver
                found = sa.or_(found, _approver_of(self.project_id, assignee))
            where.append(found)
        return where

    def list_continuations(self, query: TaskQuery = TaskQuery()) -> Page[ContinuationRecord]:
        """Continuations (pending by default) filtered as the human task inbox needs
        (:class:`~kneo.store.queries.TaskQuery`).

        Keyset paging by ``(created_at, continuation_id)``: ``next_cursor`` as ``cursor``
        continues after the page at the same cost however deep (not with ``offset``);
        ``count=False`` leaves ``total`` out. The search's words keep the tasks holding all
        of them, walking the rarest word's index rows in this order; assignee and kind walk
        their labels' rows the same way, an assignee tuple (a person, their groups) each
        one's, merged; ``expiring``/``expiring_last`` by deadline (:meth:`_by_expiry`)."""
        q = query
        status, assignee, kind, workflow_kind = q.status, q.assignee, q.kind, q.workflow_kind
        limit, offset, cursor, count = q.limit, q.offset, q.cursor, q.count
        order: SortOrder = "asc" if q.sort in ("oldest", "expiring") else "desc"
        where = self._continuation_filters(q)
        labels, either, search = _filter_labels(self.project_id, status, assignee, kind, q.search())
        others = (q.run_id, q.escalated, q.older_than, q.expires_before, q.workflow_name,
                  q.environment)  # fmt: skip
        cap = count_reach(self.settings.limits.max_list_count, offset, limit)
        quiet = not search and all(o is None for o in others)
        counted = count and quiet and assignee is None
        counter = self._counter(counted, status, workflow_kind, kind, (offset, cursor, cap))
        if q.sort in ("expiring", "expiring_last"):  # by deadline
            return self._by_expiry(where, order, (labels, either, search), limit, offset, cursor, count, counter)  # fmt: skip
        # the total is the lead term's rows: one label alone, or one word alone (a pending
        # task's words are its rows while it is pending, each once: project-scoped terms)
        one_word = not labels and not either and len(search) == 1 and kind is None
        one_word = one_word and status == TaskStatus.PENDING and all(o is None for o in others)
        by_label = ((quiet and len(labels) == 1) or one_word) and workflow_kind is None
        with self._read(snapshot=False) as conn:  # page and count need no shared snapshot
            found, total, capped, next_cursor = self._inbox_page(
                conn, where, (labels, either, search), order, (limit, offset, cursor),
                count=count and counter is None, cap=cap, by_label=by_label,
            )  # fmt: skip
            if counter is not None:  # the project's counters, unless the page tells
                total, capped = counter(conn, len(found), next_cursor is not None)
        items = [row_records.continuation(r) for r in found]
        return Page(items, total, limit, offset, "created_at", order, next_cursor, capped)

    def _counter(
        self,
        counted: bool,
        status: str | None,
        workflow_kind: str | None,
        kind: str | None,
        page: tuple[int, str | None, int | None],
    ) -> _Counter | None:
        """The ``total`` of tasks filtered by ``status`` and kind alone (when ``counted``),
        from the project's counters (:mod:`kneo.store.list_counts`: by ``workflow_kind``;
        ``kind="promotion"`` is one), unless the page (at ``page``'s offset and cursor, and
        counted up to its cap) tells it; ``None`` for a request's kind, which only the tasks'
        labels tell."""
        if not counted or (kind is not None and kind != PROMOTION):
            return None
        by = workflow_kind if kind is None else PROMOTION
        if workflow_kind == "" or (workflow_kind is not None and workflow_kind != by):
            return None  # (``''``: the counters' key for no kind; both kinds: a count)
        project_id, (offset, cursor, cap) = self.project_id, page

        def total(conn: Connection, rows: int, more: bool) -> tuple[int, bool]:
            known = page_total(rows, more, offset, cursor)
            if known is not None:
                return known, False
            return counted_total(conn, project_id, TASKS, status, by, cap)

        return total

    def _inbox_page(
        self,
        conn: Connection,
        where: list[Any],
        terms: tuple[list[str], list[str], list[str]],
        order: SortOrder,
        page: tuple[int, int, str | None],
        *,
        count: bool,
        cap: int | None,
        by_label: bool,
    ) -> tuple[list[Any], int | None, bool, str | None]:
        """A page in the inbox's order of the tasks ``where`` keeps holding the labels and
        words of ``terms`` (every one of the first and third lists, any one of the second)."""
        (labels, either, search), (limit, offset, cursor) = terms, page
        if either:
            return self._either_page(
                conn, where, either, [*labels, *search], order, limit=limit, offset=offset,
                cursor=cursor, count=count, cap=cap,
            )  # fmt: skip
        lead = labels[0] if labels and not search else search[0] if by_label and search else None
        return self._term_page(
            conn, where, [*labels, *search], lead,
            order, limit=limit, offset=offset, cursor=cursor, count=count, cap=cap,
            by_label=by_label,
        )  # fmt: skip

    def _by_expiry(
        self,
        where: list[Any],
        order: SortOrder,
        labelled: tuple[Sequence[str], ...],
        limit: int,
        offset: int,
        cursor: str | None,
        count: bool,
        counter: _Counter | None = None,
    ) -> Page[ContinuationRecord]:
        """Tasks by deadline (``expires_at``, earliest first for ``asc``), those without one
        last: two walks of the ``(project_id, status, expires_at, created_at, continuation_id)`` index
        merged (the dated ones, then the undated ones by creation). Paged by ``offset``
        only; the assignee, kind and word filters page in the inbox's own order."""
        if cursor is not None or any(labelled):
            raise InvalidRequest(
                "sort_by=expires_at pages by offset and filters by run, workflow, environment "
                "and escalation only (not cursor, assignee, kind or q)",
                field="sort_by",
            )
        c = t.continuations.c
        dated = (c.expires_at, c.created_at, c.continuation_id)
        undated = (c.created_at, c.continuation_id)
        cap = count_reach(self.settings.limits.max_list_count, offset, limit)
        with self._read(snapshot=False) as conn:
            found, _, _, _ = keyset_page(
                conn, t.continuations, [*where, c.expires_at.is_not(None)], dated, order,
                limit=limit, offset=offset,
            )  # fmt: skip
            if len(found) < limit:  # the page reaches past the dated tasks: how far past
                before = offset + len(found)
                if not found and offset:
                    dated_where = [*where, c.expires_at.is_not(None)]
                    before = count_rows(conn, t.continuations, dated_where, offset, dated)[0]
                rest, _, _, _ = keyset_page(
                    conn, t.continuations, [*where, c.expires_at.is_(None)], undated, order,
                    limit=limit - len(found), offset=max(0, offset - before),
                )  # fmt: skip
                found = [*found, *rest]
            total, capped = None, False
            if count and counter is not None:  # the project's counters
                total, capped = counter(conn, len(found), len(found) >= limit)
            elif count:
                total = page_total(len(found), len(found) >= limit, offset, None)
                if total is None:  # (no ORDER BY: the filter's index, in no order)
                    total, capped = count_rows(conn, t.continuations, where, cap)
        items = [row_records.continuation(r) for r in found]
        return Page(items, total, limit, offset, "expires_at", order, None, capped)

    def _term_page(
        self,
        conn: Connection,
        where: list[Any],
        terms: Sequence[str],
        lead: str | None,
        order: SortOrder,
        *,
        limit: int,
        offset: int,
        cursor: str | None,
        count: bool,
        cap: int | None,
        by_label: bool,
    ) -> tuple[list[Any], int | None, bool, str | None]:
        """A page of the tasks ``where`` keeps holding every term of ``terms`` (none: the
        inbox's own order). Words all common (each :data:`_RARE` rows or more) walk the
        rarest one's rows probing the others, first only as far as a few pages' reach
        (:data:`_REACH` times the page's): words found together fill the page there, at a
        page's cost whatever the planner estimates of their overlap (PostgreSQL estimated
        one row for "template ticket", both in every task, and hashed both words' rows:
        508 ms at 100,000); words rarely together run out of that walk and page by the
        words' whole rows joined in order (a merge on PostgreSQL). ``by_label``: ``total`` is
        the lead's rows (a label's, or a word searched alone), not a count of what ``where``
        keeps."""
        c = t.continuations.c
        page_where: list[Any] = where
        columns: tuple[Any, ...] = (c.created_at, c.continuation_id)
        reach = (order, cursor, max(_REACH * (offset + limit + 1), _RARE // 5))
        bounded = False
        if terms:
            page_where, columns, bounded = self._searched(conn, where, terms, lead, reach)
        page = keyset_page(
            conn, t.continuations, page_where, columns, order, limit=limit, offset=offset,
            cursor=cursor, count=count and not by_label and not bounded, cap=cap,
        )  # fmt: skip
        if bounded:  # the bounded walk: a full page, or the words' whole walk after all
            # (only to count what a full page found: any common word leads the count)
            once = page[3] is not None
            page_where, columns, _ = self._searched(conn, where, terms, lead, once=once)
            if not once:
                page = keyset_page(
                    conn, t.continuations, page_where, columns, order, limit=limit,
                    offset=offset, cursor=cursor, count=count and not by_label, cap=cap,
                )  # fmt: skip
            elif count and not by_label:
                page = (page[0], *count_rows(conn, t.continuations, page_where, cap), page[3])
        found, total, capped, next_cursor = page
        if count and by_label and lead is not None:  # a label's (a word's) rows: its tasks
            total = page_total(len(found), next_cursor is not None, offset, cursor)
            if total is None:
                k = t.continuation_terms
                key = (k.c.term, k.c.created_at)
                total, capped = count_rows(conn, k, [k.c.term == lead], cap, key)
        return found, total, capped, next_cursor

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
        costs a page per label, not a walk of every pending task. ``total`` (exact; only a
        caller that asks pays it) counts the same labels' rows, a task of two of them once:
        the rows of the caller's queue, never a probe per pending task (issue 73)."""
        c = t.continuations.c
        branches, matching = [], []
        for term in either:
            narrowed, columns, _ = self._searched(conn, where, [term, *every], term)
            walk = page_walk(
                sa.select(c.continuation_id), narrowed, columns, order, cursor,
                limit=limit, offset=offset,
            )  # fmt: skip
            branches.append(sa.select(walk.c.continuation_id))
            matching.append(sa.select(c.continuation_id).where(*narrowed))
        merged = sa.union_all(*branches).subquery()
        found, _, _, next_cursor = keyset_page(
            conn, t.continuations, [c.continuation_id.in_(sa.select(merged.c.continuation_id))],
            (c.created_at, c.continuation_id), order, limit=limit, offset=offset, cursor=cursor,
        )  # fmt: skip
        total, capped = None, False
        if count:
            total = page_total(len(found), next_cursor is not None, offset, cursor)
            if total is None:  # each label's rows (UNION: a task of two labels once)
                queue = sa.union(*matching).subquery()
                total, capped = count_rows(conn, queue, [], cap)
        return found, total, capped, next_cursor

    @staticmethod
    def _searched(
        conn: Connection,
        where: list[Any],
        search: Sequence[str],
        lead: str | None = None,
        reach: tuple[SortOrder, str | None, int] | None = None,
        *,
        once: bool = False,
    ) -> tuple[list[Any], tuple[Any, ...], bool]:
        """``where`` narrowed to tasks holding every term of ``search`` (words, labels), the
        order to page by, and whether the walk is bounded: the rarest term's
        ``continuation_terms`` rows (or ``lead``'s), whose key is the inbox's order, joined to
        their tasks; the other terms are probed per task by its ``(continuation_id, term)``
        index, before its task is read. When every word has :data:`_RARE` rows or more
        (counted once: :func:`_rarity`), ``reach`` (the page's order, cursor and the rows to
        walk) bounds the rarest word's walk to its first rows after the
        cursor (then ``True``: :meth:`_term_page`); without it the words' rows are joined by
        the order's key (a merge of the words' walks on PostgreSQL; ``once``: the lead by the
        first round of counts). Which term is rarest is counted (:func:`_rarity`), so the walk is as long as the rarest word's rows, not the
        first common word's."""
        c = t.continuations.c
        k = t.continuation_terms
        words = list(dict.fromkeys(search))
        if lead is not None:
            words.remove(lead)
            words.insert(0, lead)
        common = False
        if lead is None and len(words) > 1:
            found = _rarity(conn, words, once=once or reach is not None)
            words.sort(key=found.__getitem__)
            common = found[words[0]] >= _RARE
        lead, rest = words[0], words[1:]
        if common and reach is not None:
            return (*_lead_walk(where, lead, rest, reach), True)
        narrowed = [*where, k.c.term == lead, k.c.continuation_id == c.continuation_id]
        for word in rest:
            other = k.alias()
            if common:
                # every word common: join the words' rows by the inbox's order, which each
                # word's index holds, so PostgreSQL can merge the two walks (sequential
                # reads, 24-41 ms for two words of 50,000 tasks each never together) where a
                # probe per row took 245-585 ms; SQLite looks each one up by its key
                narrowed += [
                    other.c.term == word,
                    other.c.created_at == k.c.created_at,
                    other.c.continuation_id == k.c.continuation_id,
                ]
                continue
            # ``OFFSET 0`` keeps the probe a per-task lookup: without it PostgreSQL may make
            # it a hash semi-join over every row of the word, which a generic plan (a
            # statement psycopg prepared, planned without the words) does for any pair,
            # however rare the lead: 70 ms became 380 ms after the 10th call at 100,000 tasks
            narrowed.append(
                sa.exists(
                    sa.select(other.c.term)
                    .where(other.c.continuation_id == k.c.continuation_id, other.c.term == word)
                    .offset(0)
                )
            )
        return narrowed, (k.c.created_at, k.c.continuation_id), False

    def pending_counts_by_assignee(self, cap: int | None = None) -> dict[str | None, int]:
        """The project's pending requests of pending continuations per assignee (``None`` =
        unassigned), from the ``(project_id, status, assignee)`` index (a request row is
        pending only while its continuation is, see ``continuation_request_rows``). Without
        ``cap``: one scan of every pending row. With it, each assignee is counted up to ``cap + 1`` (a count above
        ``cap`` means "more than ``cap``"): the assignees are found by skipping from one to
        the next in the index, so this reads at most (assignees) x (``cap`` + 1) rows however
        many tasks are pending."""
        r = t.continuation_requests.c
        with self._read() as conn:
            if cap is None:
                stmt = (
                    sa.select(r.assignee, sa.func.count())
                    .where(r.project_id == self.project_id, r.status == "pending")
                    .group_by(r.assignee)
                )
                return {assignee: int(n) for assignee, n in conn.execute(stmt)}
            found = conn.execute(_CAPPED_COUNTS, {"n": cap + 1, "project_id": self.project_id})
            return {assignee: int(n) for assignee, n in found if n}

    def inbox_version(self) -> int:
        """A number that changes whenever the project's inbox may have: its newest audit
        event's id (every pause, decision, expiry, escalation and promotion is audited, in
        the transaction that makes it). One seek of ``(project_id, id)``, whatever the
        number of tasks: the console's refresh answers ``304`` from it without listing or
        counting."""
        a = t.audit_events.c
        newest = sa.select(sa.func.max(a.id)).where(a.project_id == self.project_id)
        with self._read() as conn:
            found = conn.execute(newest).scalar()
        return int(found or 0)
