"""Every list query is served by an index in its own order: the plans of the real
statements (captured as the store runs them) never scan a big table whole nor sort it.

``EXPLAIN QUERY PLAN`` on SQLite and ``EXPLAIN`` on PostgreSQL (after ``VACUUM ANALYZE``,
as autovacuum leaves a table after a bulk load, with enough rows that a scan would be chosen
if it were cheaper), for each listing with each of its filters, first page and after a cursor.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from kneo.settings import Settings
from kneo.store import AuditQuery, RegistryQuery, RunQuery, Store, TaskQuery, open_store
from kneo.store import tables as t
from kneo.store.tasks.search import task_labels

from .helpers import selects_run_by

ROWS = 20_000
BIG = (
    "runs",
    "run_terms",
    "continuations",
    "continuation_requests",
    "continuation_terms",
    "audit_events",
    "bundle_revisions",
)


def _fill(store: Store, rows: int) -> None:
    """``rows`` runs, each paused on one continuation with one pending request (every tenth
    a promotion without a run), and an audit event per run: copies of real rows."""
    with store.transaction() as tx:
        run = tx.create_run(target="workflow", input_text="x", workflow_name="wf")
        tx.put_continuation(
            "cont_t",
            run_id=run.run_id,
            requests=[{"request_id": "req_t", "kind": "approval", "assignee": "a0"}],
        )
        tx.add_audit("run.created", run_id=run.run_id)
    with store.engine.connect() as conn:
        run_row = dict(conn.execute(sa.select(t.runs)).mappings().one())
        cont_row = dict(conn.execute(sa.select(t.continuations)).mappings().one())
        req_row = dict(conn.execute(sa.select(t.continuation_requests)).mappings().one())
        audit_row = dict(conn.execute(sa.select(t.audit_events)).mappings().one())
    audit_row.pop("id")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    runs, conts, reqs, audits, terms, run_terms = [], [], [], [], [], []
    for i in range(rows):
        at = start + timedelta(seconds=i)
        promotion = i % 10 == 0
        run_id = None if promotion else f"run_{i:06d}"
        if run_id:
            # and a few running (as many as execute at once: their pages sort them)
            status = "running" if i % 200 == 7 else ("paused", "succeeded", "failed")[i % 3]
            runs.append({**run_row, "run_id": run_id, "status": status, "created_at": at})
            # the runs filters: a session of ten runs in every 100, one failed run in 50,
            # a workflow of its own per 1,000; the search's words: one every run has, one
            # of 1 % of them, one of each run alone (its outcome's words)
            runs[-1] |= {
                "session_id": f"s{i // 10}" if i % 100 < 10 else None,
                "error": {"message": "boom"} if i % 50 == 1 else None,
                "workflow_name": f"wf{i // 1000}" if i % 1000 < 3 else "wf",
                "workflow_kind": "graph" if i % 1000 < 3 else "sequential",
                "updated_at": at + timedelta(seconds=i % 7),
            }
            run_terms += [
                {"term": w, "created_at": at, "run_id": run_id}
                for w in ("done", f"g{i % 100}", f"w{i:06d}")
            ]
        cid = f"cont_{i:06d}"
        pending = promotion or i % 3 == 0  # history: most tasks were answered long ago
        if run_id:
            audits.append({**audit_row, "event_id": f"evt_{i:06d}", "run_id": run_id})
            # most events have no continuation (and are not in its index: 0020)
            audits[-1]["continuation_id"] = cid if i % 4 == 1 else None
        kind = "promotion" if promotion else "sequential"
        conts.append(
            {**cont_row, "continuation_id": cid, "run_id": run_id, "workflow_kind": kind}
            | {"created_at": at, "environment": f"env{i % 4}"}
            | {"status": "pending" if pending else "answered"}
        )
        reqs.append(
            {**req_row, "continuation_id": cid, "kind": ("approval", "input")[i % 2]}
            | {"assignee": f"a{i % 50}", "status": "pending" if pending else "resolved"}
        )
        if pending:  # the inbox search's words: one every task has, a group's, its own
            request = {"kind": reqs[-1]["kind"], "assignee": reqs[-1]["assignee"]}
            terms += [
                {"term": w, "created_at": at, "continuation_id": cid}
                # and the assignee and kind filters' labels
                for w in (
                    "approve",
                    f"g{i % 100}",
                    f"w{i:06d}",
                    *task_labels([request], promotion=promotion),
                )
            ]
    revisions = [  # a bundle per ten rows, in four environments, two revisions each
        {"bundle_name": f"b{i // 8:05d}", "environment": f"env{i % 4}", "revision": 1 + i // 4 % 2}
        | {"digest": "sha256:x", "commit": "c", "signer_key_ids": [], "approved_by": []}
        | {"status": "active" if i // 4 % 2 else "superseded", "diagnostics": [], "spec": {}}
        | {"created_at": start}
        for i in range(rows // 10 * 8)
    ]
    for table, values in (
        (t.bundle_revisions, revisions),
        (t.runs, runs),
        (t.run_terms, run_terms),
        (t.continuations, conts),
        (t.continuation_requests, reqs),
        (t.continuation_terms, terms),
        (t.audit_events, audits),
    ):
        # a transaction per 1,000 rows, as writers commit: in one transaction, each row's
        # list counter update (0037) walks every version the transaction left before it
        for first in range(0, len(values), 1_000):
            with store.engine.begin() as conn:
                conn.execute(table.insert(), values[first : first + 1_000])
    if store.dialect.name == "postgresql":
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE"))  # as autovacuum does after a bulk load


@pytest.fixture(params=["sqlite", "postgresql"], scope="module")
def big_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Store]:
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_session_databases").new()
        store = open_store(url, settings=Settings())
    else:
        store = open_store(None, state_dir=tmp_path_factory.mktemp("plans"))
    _fill(store, ROWS if request.param == "postgresql" else 3_000)
    yield store
    store.close()


def _plan(store: Store, statement: str, params: Any) -> list[str]:
    prefix = "EXPLAIN QUERY PLAN " if store.dialect.name == "sqlite" else "EXPLAIN "
    with store.engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        cursor = raw.cursor()
        cursor.execute(prefix + statement, params)
        rows = cursor.fetchall()
    return [str(row[-1] if store.dialect.name == "sqlite" else row[0]) for row in rows]


def _bad_steps(store: Store, statement: str, plan: list[str]) -> list[str]:
    """Plan lines that sort rows of a big table or scan one whole. Walking a table or
    index in the listing's order is not (the page's ``LIMIT`` stops it): SQLite's ``SCAN t``
    of a statement without ``WHERE`` walks the rowid order, ``SCAN t USING INDEX i`` the
    index's order. On PostgreSQL a sort of what an index lookup found, estimated at 1 % of
    the rows or fewer, is not either: for a rare search word the planner rightly fetches its
    few rows and sorts them rather than walk the index in order (a common word's walk is
    checked by its own listing)."""
    filtered = " WHERE " in statement.upper()
    # a merge of walks (an assignee and their groups) sorts what they found: each branch is
    # an index walk in order with its own LIMIT, so at most branches x (limit + 1) rows
    merged = " UNION ALL " in statement.upper()
    bad = []
    for line in plan:
        text = line.strip()
        if store.dialect.name == "sqlite":
            whole = text.startswith("SCAN ") and "USING" not in text and filtered
            sorts = "USE TEMP B-TREE" in text and not (merged and text.endswith("ORDER BY"))
            if sorts or (whole and text.split()[1] in BIG):
                bad.append(text)
            continue
        sort = re.match(r"(->\s*)?Sort\s+\(cost=[\d.]+\.\.[\d.]+ rows=(\d+)", text)
        if any(f"Seq Scan on {name} " in text for name in BIG) or (
            sort and int(sort.group(2)) > ROWS // 100
        ):
            bad.append(text)  # (an Incremental Sort orders the small groups an index delivers)
    return bad


Listing = Callable[[Store, str | None], Any]


def _tasks(query: TaskQuery) -> Listing:
    """The inbox listing ``query`` asks for, from cursor ``c``, without its count."""
    return lambda s, c: s.tasks.list_continuations(replace(query, cursor=c, count=False))


LISTINGS: dict[str, Listing] = {
    "runs": lambda s, c: s.runs.list_runs(RunQuery(limit=50, cursor=c, count=False)),
    "runs status": lambda s, c: s.runs.list_runs(
        RunQuery(status="paused", limit=50, cursor=c, count=False)
    ),
    "runs by update": lambda s, c: s.runs.list_runs(
        RunQuery(sort_by="updated_at", cursor=c, count=False)
    ),
    "runs by update running": lambda s, c: s.runs.list_runs(
        RunQuery(status="running", sort_by="updated_at", limit=5, cursor=c, count=False)
    ),
    "runs by status": lambda s, c: s.runs.list_runs(
        RunQuery(sort_by="status", cursor=c, count=False)
    ),
    "runs oldest": lambda s, c: s.runs.list_runs(RunQuery(sort_order="asc", cursor=c, count=False)),
    **{
        f"runs {name}{' by update' if by == 'updated_at' else ''}": (
            lambda s, c, by=by, found=found: s.runs.list_runs(
                replace(found, sort_by=by, limit=20, cursor=c, count=False)
            )
        )
        for by in ("created_at", "updated_at")
        for name, found in {
            "session": RunQuery(session_id="s70"),
            "failed": RunQuery(has_error=True),
            "without error": RunQuery(has_error=False),
            "workflow": RunQuery(workflow_name="wf2"),
            "kind": RunQuery(workflow_kind="graph"),
            "created after": RunQuery(created_after=datetime(2026, 1, 1, 0, 40, tzinfo=UTC)),
            "search common": RunQuery(q="done"),
            "search rare": RunQuery(q="w000005"),
            "search absent": RunQuery(q="zeppelin"),
            "search two": RunQuery(q="done g7"),
            "search rare and common": RunQuery(q="g7 w000007"),
        }.items()
    },
    "runs search rare by status": lambda s, c: s.runs.list_runs(
        RunQuery(sort_by="status", q="g7", limit=20, cursor=c, count=False)
    ),
    "tasks": _tasks(TaskQuery()),
    "tasks newest": _tasks(TaskQuery(sort="newest")),
    "tasks assignee": _tasks(TaskQuery(assignee="a7")),
    "tasks kind": _tasks(TaskQuery(kind="input")),
    "tasks assignee and kind": _tasks(TaskQuery(assignee="a7", kind="input")),
    "tasks mine": _tasks(TaskQuery(assignee=("a7", "a8", "a9"))),  # a person and their groups
    "tasks promotion": _tasks(TaskQuery(kind="promotion")),
    "tasks workflow kind": _tasks(TaskQuery(workflow_kind="sequential")),
    "tasks environment": _tasks(TaskQuery(environment="env1")),
    "tasks workflow": _tasks(TaskQuery(workflow_name="wf")),
    "tasks search common": _tasks(TaskQuery(q="approve")),
    "tasks search rare": _tasks(TaskQuery(q="w000003")),
    "tasks search two": _tasks(TaskQuery(q="approve g3")),
    "tasks search newest": _tasks(TaskQuery(q="g3", sort="newest")),
    "tasks search assignee": _tasks(TaskQuery(q="approve", assignee="a7")),
    "audit": lambda s, c: s.audit.list_audit(AuditQuery(cursor=c, count=False)),
    "registry": lambda s, c: s.registry.list_registry(RegistryQuery(limit=50, cursor=c)),
    "registry all": lambda s, c: s.registry.list_registry(
        RegistryQuery(status=None, limit=50, cursor=c)
    ),
    "registry environment": lambda s, c: s.registry.list_registry(
        RegistryQuery(environment="env2", limit=50, cursor=c)
    ),
    "audit type": lambda s, c: s.audit.list_audit(
        AuditQuery(event_type="run.created", cursor=c, count=False)
    ),
    "audit run": lambda s, c: s.audit.list_audit(
        AuditQuery(run_id="run_000007", cursor=c, count=False)
    ),
    "audit continuation": lambda s, c: s.audit.list_audit(
        AuditQuery(continuation_id="cont_000001", cursor=c, count=False)
    ),
}


#: Listings whose page sorts the running runs, which the status index finds: as many as
#: execute at once (their ``updated_at`` moves at every step: no index keeps that order).
SORTS_RUNNING = {"runs by update running"}
#: Run searches led by a rare word (fewer ``run_terms`` rows than the store counts before it
#: chooses, ``run_filters._RARITY_CAP``): in any order, the listing reads that word's rows by
#: their term, and when the order is not theirs (``created_at``) looks its runs up by key and
#: sorts at most those. It never walks the runs in the listing's order probing each for the
#: word, which for a word no run holds reads every run (as the original clients' default,
#: ``sort_by=updated_at``, did until issue 55).
RARE_SEARCHES = {
    name
    for name in LISTINGS
    if name.startswith("runs search") and not name.startswith("runs search common")
}
#: Filtered listings in an order their filter's index does not hold (by update, by status)
#: whose filter keeps fewer runs than the store counts before it chooses: the page sorts
#: those runs' keys, found by the filter's index (``kneo.store.runs.filters.few_runs``),
#: never walks every run in the page's order testing the filter (issue 73).
FEW_KEYS = {
    f"runs {name} by update" for name in ("session", "failed", "workflow", "kind", "created after")
} | {"runs by update running"}
#: ... of which these find nothing.
EMPTY = {name for name in LISTINGS if "absent" in name}


def _walks_runs_in_order(store: Store, plan: list[str]) -> bool:
    """Whether ``plan`` walks an index of ``runs`` (or the table) without a key to look
    up: in its order, row after row."""
    for line in plan:
        text = line.strip().lstrip("-> ")
        if store.dialect.name == "sqlite" and re.match(r"SCAN runs\b", text):
            return True
        if re.match(r"(Index|Index Only) Scan (Backward )?using \w+ on runs\b", text):
            following = plan[plan.index(line) + 1 : plan.index(line) + 3]
            if not any("Index Cond" in f for f in following):
                return True
    return False


@pytest.mark.parametrize("name", sorted(LISTINGS))
def test_list_query_walks_an_index_in_order(big_store: Store, name: str) -> None:
    """First page and the page after its cursor: no full scan, no sort of a big table."""
    listing = LISTINGS[name]
    first = listing(big_store, None)
    assert bool(first.items) != (name in EMPTY), name
    calls: list[tuple[str, Any]] = selects_run_by(big_store, lambda: listing(big_store, None))
    if first.next_cursor is not None:
        cursor = first.next_cursor
        calls += selects_run_by(big_store, lambda: listing(big_store, cursor))
    list_calls = [(s, p) for s, p in calls if "LIMIT" in s.upper()]
    assert list_calls, calls
    if name in RARE_SEARCHES:  # the word's rows, read by their term
        by_term = "(term=?" if big_store.dialect.name == "sqlite" else "(term = "
        plans = [line for s, p in calls if "run_terms" in s for line in _plan(big_store, s, p)]
        assert any(by_term in line for line in plans), (name, plans)
    for statement, params in list_calls:
        plan = _plan(big_store, statement, params)
        bad = _bad_steps(big_store, statement, plan)
        if name in SORTS_RUNNING:
            assert any("ix_runs_project_id_status_created_at_run_id" in line for line in plan), plan
            bad = [line for line in bad if "TEMP B-TREE" not in line]
        if name in RARE_SEARCHES and " runs" in statement:
            assert not _walks_runs_in_order(big_store, plan), (name, statement, plan)
            bad = [line for line in bad if "TEMP B-TREE" not in line]  # the word's runs
        if re.search(r"\) AS found\b", statement):  # a rare filter's keys, found by its index
            assert name in FEW_KEYS or name in RARE_SEARCHES, (name, statement)
            assert not _walks_runs_in_order(big_store, plan), (name, statement, plan)
            bad = [line for line in bad if "TEMP B-TREE" not in line and "Sort" not in line]
        assert not bad, (name, statement, plan)
    if big_store.dialect.name == "sqlite":  # (without statistics: see runs.filters._by_keys)
        for statement, params in calls:  # a rare word's runs, a page's rows: by their keys
            if re.search(r"\bruns\.run_id IN \(", statement):
                plan = _plan(big_store, statement, params)
                runs = [line for line in plan if re.search(r"(SEARCH|SCAN) runs\b", line)]
                assert all(line.endswith("(run_id=?)") for line in runs), (name, statement, plan)


def test_pending_counts_by_assignee_read_an_index(big_store: Store) -> None:
    """The inbox's counts per assignee are one walk of the (status, assignee) index."""
    calls = selects_run_by(big_store, big_store.tasks.pending_counts_by_assignee)
    assert len(calls) == 1
    plan = _plan(big_store, *calls[0])
    assert not _bad_steps(big_store, calls[0][0], plan), plan
    pending = sa.select(sa.func.count()).where(t.continuations.c.status == "pending")
    with big_store.engine.connect() as conn:
        every = conn.execute(pending).scalar_one()  # ``total`` stops at its cap; this does not
    assert sum(big_store.tasks.pending_counts_by_assignee().values()) == every


def test_a_full_scan_is_caught(big_store: Store) -> None:
    """The check itself fails on an unindexed order (so the test above can fail)."""
    for statement in (
        "SELECT * FROM runs ORDER BY input_text LIMIT 10",
        "SELECT * FROM runs WHERE input_text = 'y' LIMIT 10",
    ):
        params = {} if big_store.dialect.name == "postgresql" else ()
        assert _bad_steps(big_store, statement, _plan(big_store, statement, params)), statement


_ = Path


#: The listings whose page can carry a ``total`` (the registry's is its own query).
COUNTED = sorted(name for name in LISTINGS if not name.startswith("registry"))


def _counting(store: Store, monkeypatch: pytest.MonkeyPatch, cap: int) -> None:
    """Every listing of ``store`` asked for its ``total`` (the API's default), counted up to
    ``cap`` rows past the page (``0``: exact, the default; ``KNEO_SERV_MAX_LIST_COUNT``)."""
    settings = dataclasses.replace(
        store.settings, limits=dataclasses.replace(store.settings.limits, max_list_count=cap)
    )
    for facet, method in ((store.runs, "list_runs"), (store.tasks, "list_continuations"),
                          (store.audit, "list_audit")):  # fmt: skip
        listing = getattr(facet, method)
        monkeypatch.setattr(facet, method, functools.partial(_counted, listing))
        monkeypatch.setattr(facet, "settings", settings)


def _counted(listing: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``listing`` asked to count: its query value (a first argument) or its keyword."""
    if args and isinstance(args[0], (RunQuery, TaskQuery, AuditQuery)):
        return listing(dataclasses.replace(args[0], count=True), *args[1:], **kwargs)
    return listing(*args, **{**kwargs, "count": True})


def _drives_by_term(store: Store, plan: list[str]) -> bool:
    """Whether ``plan`` reads a term's (or label's) rows by their term, or a rare word's runs
    by their keys: what a count that probes each row it counts walks (not every task or run
    of the project)."""
    if store.dialect.name == "sqlite":
        if any(re.search(r"(SEARCH|SCAN) \w*_terms\b.*\(term=\?", line) for line in plan):
            return True
        # a rare word's runs, each looked up by the key its term rows gave (never the project)
        runs = [line for line in plan if re.search(r"(SEARCH|SCAN) runs\b", line)]
        return bool(runs) and all(line.endswith("(run_id=?)") for line in runs)
    for at, line in enumerate(plan):
        if re.search(r"Scan .*on \w*_terms\b", line) and any(
            re.search(r"\(term = |term = ANY", f) for f in plan[at + 1 : at + 3]
        ):
            return True
    return False


@pytest.mark.parametrize("cap", [0, 1000], ids=["exact", "capped"])
@pytest.mark.parametrize("name", COUNTED)
def test_list_total_counts_what_matches(
    big_store: Store, monkeypatch: pytest.MonkeyPatch, name: str, cap: int
) -> None:
    """A listing's ``total`` (issue 73): its count statements carry no sort by the page's
    order (an exact count no ``ORDER BY`` at all; a capped one at most its filters' index
    order), neither scans a big table whole nor sorts one, and a count that probes each row
    it counts (another word, a label) walks a term's rows (the caller's queue, the rarest
    word), never every pending task or run of the project (what "Mine" did)."""
    _counting(big_store, monkeypatch, cap)
    listing = LISTINGS[name]
    calls = selects_run_by(big_store, lambda: listing(big_store, None))
    page = listing(big_store, None)
    assert page.total is not None, name
    assert page.total >= len(page.items)
    counts = [(s, p) for s, p in calls if re.match(r"\s*SELECT count\(\*\)", s)]
    for statement, params in counts:
        ordered = " ORDER BY " in statement.upper()
        assert not (ordered and "LIMIT" not in statement.upper()), (name, statement)
        assert "updated_at" not in statement.upper().partition(" ORDER BY ")[2].lower(), (
            name,
            statement,
        )
        plan = _plan(big_store, statement, params)
        bad = [line for line in _bad_steps(big_store, statement, plan) if "UNION" not in line]
        if re.search(r"\) AS found\b", statement):  # a rare filter's or word's keys
            bad = [line for line in bad if "TEMP B-TREE" not in line and "Sort" not in line]
        if cap == 0 and big_store.dialect.name == "postgresql":
            # an exact count of most of the project reads it all, by either path
            bad = [line for line in bad if "Seq Scan" not in line]
        assert not bad, (name, statement, plan)
        probes = any(m in line for line in plan for m in ("CORRELATED", "SubPlan", "Semi Join"))
        if probes:
            assert _drives_by_term(big_store, plan), (name, statement, plan)


def test_mine_counts_its_queue_not_the_inbox(big_store: Store) -> None:
    """``assignee=mine`` (several labels) counts its tasks exactly (a task of two labels
    once) from the labels' rows: what a single assignee's count reads, summed."""
    mine = big_store.tasks.list_continuations(TaskQuery(assignee=("a7", "a8", "a57"), limit=10))
    single = [
        big_store.tasks.list_continuations(TaskQuery(assignee=a, limit=10)).total
        for a in ("a7", "a8")
    ]
    assert mine.total == sum(t or 0 for t in single)  # (a57: nobody's)
    calls = selects_run_by(
        big_store,
        lambda: big_store.tasks.list_continuations(TaskQuery(assignee=("a7", "a8"), limit=10)),
    )
    counts = [(s, p) for s, p in calls if re.match(r"\s*SELECT count\(\*\)", s)]
    assert counts
    for statement, params in counts:
        assert _drives_by_term(big_store, _plan(big_store, statement, params)), statement
