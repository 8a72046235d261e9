"""The filters of a runs listing (``GET /v1/runs``) as the ``WHERE`` of its page.

Each filter has an index in the listing's newest-first order (migration 0023): a session's
runs, a workflow's (by name or kind), the failed ones, and a time window on ``created_at``
itself, so a rare value's page costs what a common one's does. A search (``q``) walks the
``run_terms`` rows of one of its words, whose key is that order too, joined to their runs
(the other words probed per run by ``(run_id, term)``), as the inbox's search does
(:mod:`kneo.store.tasks.search`). Sorted otherwise (``updated_at``, ``status``), a word in fewer
runs than :data:`_RARITY_CAP` gives their keys, sorted, and the page's rows are read by key
(:func:`searched`, :func:`whole_rows`); only words that common walk the order's own index,
each probed per run.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from kneo.store import tables as t
from kneo.store.base import count_rows
from kneo.store.queries import RunQuery
from kneo.store.tasks.search import query_terms, scoped_term

#: Rows of a word counted to tell which of a query's words is rarest (then it leads).
_RARITY_CAP = 1000


def run_where(found: RunQuery) -> list[Any]:
    """The conditions of every filter but the search."""
    c = t.runs.c
    where: list[Any] = []
    for name in ("session_id", "workflow_name", "workflow_kind"):
        value = getattr(found, name)
        if value is not None:
            where.append(c[name] == value)
    if found.has_error is not None:
        where.append(c.error.is_not(None) if found.has_error else c.error.is_(None))
    if found.created_after is not None:
        where.append(c.created_at > found.created_after)
    if found.created_before is not None:
        where.append(c.created_at < found.created_before)
    return where


def searched(
    conn: Connection,
    where: list[Any],
    q: str,
    columns: tuple[Any, ...],
    by_created: bool,
    project_id: int,
) -> tuple[sa.FromClause, list[Any], tuple[Any, ...]]:
    """What a search pages: the table (``runs``, or a few runs found by a rare word), the
    conditions narrowed to runs holding every word of ``q``, and the columns of the order.

    Each word's rows are counted first (up to :data:`_RARITY_CAP`), so the rarest leads. In
    ``created_at`` order (``by_created``) the rarest word's ``run_terms`` rows, whose key is
    that order, are walked and joined to their runs. In another order (``updated_at``, the
    original clients' default, or ``status``) a rare word (fewer rows than the cap) gives its
    runs' ids, which are looked up by key and sorted: at most the cap's rows, however many
    runs there are. Only when every word is common is the order's own index walked, each word
    probed per run (a match every ``N / cap`` runs at worst). The other words are probed per
    run by ``(run_id, term)``. The words are project ``project_id``'s
    (:func:`~kneo.store.tasks.search.scoped_term`): its own key range of ``run_terms``."""
    k = t.run_terms
    c = t.runs.c
    words = [scoped_term(project_id, word) for word in query_terms(q)]
    rarity = {  # (one word in created_at order leads whatever its count)
        w: count_rows(conn, k, [k.c.term == w], _RARITY_CAP, (k.c.term, k.c.created_at))[0]
        for w in words
        if len(words) > 1 or not by_created
    }
    words.sort(key=lambda w: rarity.get(w, 0))
    narrowed = list(where)
    few = not by_created and rarity[words[0]] < _RARITY_CAP
    if by_created:
        narrowed += [k.c.term == words[0], k.c.run_id == c.run_id]
        columns = (k.c.created_at, k.c.run_id)
        words = words[1:]
    elif few:
        # the ids themselves, not a subquery (PostgreSQL joins a subquery's rows to a scan
        # of every run when it estimates that cheaper: it did at 20,000 runs for a word of
        # 200); a list of keys is looked up by the primary key on both databases
        ids = conn.execute(sa.select(k.c.run_id).where(k.c.term == words[0])).scalars()
        narrowed = [*_by_keys(conn, narrowed), c.run_id.in_(list(ids))]
        words = words[1:]
    for word in words:
        other = k.alias()
        probe = sa.select(other.c.term).where(other.c.run_id == c.run_id, other.c.term == word)
        # OFFSET 0 keeps the probe a per-run lookup (see the inbox's search)
        narrowed.append(sa.exists(probe.offset(0)))
    if not few:
        return t.runs, narrowed, columns
    # the few runs' keys, found by key, are the table the page sorts (the page's own rows are
    # read after: :func:`whole_rows`): OFFSET 0 keeps them a table of their own, so no
    # database walks an index in the page's order filtering every run by the list instead
    # (PostgreSQL did, estimating the matches spread evenly); keys only, so a sort of a
    # thousand runs reads none of their states
    keys = list(dict.fromkeys([c.run_id, *columns]))
    found = sa.select(*keys).where(*narrowed).offset(0).subquery("found")
    return found, [], tuple(found.c[col.name] for col in columns)


def _by_keys(conn: Connection, where: list[Any]) -> list[Any]:
    """``where`` of a statement that looks runs up by a list of their keys. Without
    statistics SQLite takes an equality on an index's first column (the project, a status) to
    keep a handful of rows, so it walks that index over the whole project testing the list
    (the page's rows of a rare word: 3 ms at 20,000 runs, growing with them); each condition
    said to keep nearly every row (SQLite's ``likely``, as they do), the keys are looked up
    and each condition tested on what they found."""
    if conn.dialect.name != "sqlite":
        return where
    return [sa.func.likely(term) for term in where]


def few_runs(
    conn: Connection, where: list[Any], columns: tuple[Any, ...]
) -> tuple[sa.FromClause, list[Any], tuple[Any, ...]] | None:
    """A filtered listing in an order its filter's index does not hold (``updated_at``,
    ``status``): when fewer runs than :data:`_RARITY_CAP` match, their keys, found by the
    filter's index (each filter's leads with the project) and sorted, are what the page
    pages, as a rare search word's are (:func:`searched`); ``None`` when more match, and
    the order's own index, walked and filtered, meets a match every ``N / cap`` runs at
    worst. So a rare session's, workflow's or status's page by update costs its runs, not a
    walk of every run (issue 73)."""
    c = t.runs.c
    # counted in the filters' own order (each filter's index ends ``created_at, run_id``):
    # unordered, PostgreSQL scans the table for a filter most runs pass, stopping at the cap
    # only if the matches are spread evenly (a window on ``created_at`` is at one end)
    if count_rows(conn, t.runs, where, _RARITY_CAP, (c.created_at, c.run_id))[1]:
        return None
    keys = list(dict.fromkeys([c.run_id, *columns]))
    found = sa.select(*keys).where(*where).offset(0).subquery("found")
    return found, [], tuple(found.c[col.name] for col in columns)


def whole_rows(conn: Connection, found: list[Any], project_id: int) -> list[Any]:
    """The project's runs rows of a page of keys (``run_id`` each), in the page's order."""
    c = t.runs.c
    ids = [row["run_id"] for row in found]
    if not ids:
        return []
    page = sa.select(t.runs).where(*_by_keys(conn, [c.project_id == project_id]), c.run_id.in_(ids))
    rows = {r["run_id"]: r for r in conn.execute(page).mappings()}
    return [rows[run_id] for run_id in ids if run_id in rows]


__all__ = ["few_runs", "run_where", "searched", "whole_rows"]
