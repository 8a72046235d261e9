"""Inbox search plans as a server lives: each search's time per call, past the point where
psycopg prepares a statement (its 5th run) and PostgreSQL may switch to a generic plan.

    python bench/inbox_search.py [--tasks 100000] [--calls 30] [--pg URL] [--explain]

One store (SQLite, or with ``--pg`` a fresh database on that server) is filled with
``--tasks`` pending tasks in a few seconds: one real paused task, then copies of its rows
made by the database (``INSERT ... SELECT`` over a generated series), each with the words
``approve`` (every task), ``g<i % 100>`` (one in a hundred), ``w<i>`` (its own), and
``even`` or ``odd`` (half each, never both) and ``tenth`` or ``most`` (one in ten, the
rest), then ``ANALYZE``. Each search is then run
``--calls`` times through ``store.tasks.list_continuations`` (first page of 50, counted, as the
inbox asks) on one pooled connection; the report gives the median of calls 1-5 and of the
calls after the 10th, and the slowest. ``--explain``: PostgreSQL's generic plan of each
search's page statement (``plan_cache_mode = force_generic_plan``), what a prepared
statement would run once PostgreSQL stopped planning per call. ``--soak N`` (PostgreSQL):
then every search and the inbox's and runs' listings N times each, and the sequential scans
``pg_stat_user_tables`` counted on each table meanwhile (a plan cached while it was right
for few rows, or a generic one, shows as scans here).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

from kneo.store import AuditQuery, TaskQuery

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO)]

import sqlalchemy as sa  # noqa: E402

from bench.scratch_db import scratch_database  # noqa: E402
from kneo.settings import Settings  # noqa: E402
from kneo.store import Store, open_store  # noqa: E402
from kneo.store import tables as t  # noqa: E402
from tests.store.helpers import generic_plan, selects_run_by  # noqa: E402

SEARCHES: dict[str, list[str]] = {
    "one task's word": ["w42"],
    "every task's word": ["approve"],
    "two words (1 in 100)": ["approve", "g7"],
    "two common words never together": ["even", "odd"],
    "a common word, a rarer one, never together": ["most", "tenth"],
}


def fill(store: Store, tasks: int) -> None:
    """``tasks`` pending tasks: one through the store's writes, the rest its copies."""
    with store.transaction() as tx:
        run = tx.create_run(target="workflow", input_text="x", workflow_name="wf")
        tx.put_continuation(
            "tmpl",
            run_id=run.run_id,
            requests=[{"request_id": "req_tmpl", "kind": "approval", "assignee": "ops"}],
            search_text=["template"],
        )
    pg = store.dialect.name == "postgresql"
    later = "{col} + s.i * interval '1 second'" if pg else "{col} + s.i * 1000000"
    series = "WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < :n - 1) "

    def copy(table: sa.Table, key: str, overrides: dict[str, str]) -> str:
        names = [c.name for c in table.c]
        values = [
            overrides.get(n, later.format(col=f"o.{n}") if n == "created_at" else f"o.{n}")
            for n in names
        ]
        return (
            f"{series}INSERT INTO {table.name} ({', '.join(names)}) "
            f"SELECT {', '.join(values)} FROM {table.name} o, s WHERE o.{key} = :tmpl"
        )

    cid = "'c' || s.i"
    statements = [
        (copy(t.runs, "run_id", {"run_id": "'r' || s.i"}), run.run_id),
        (copy(t.continuations, "continuation_id", {"continuation_id": cid,
                                                    "run_id": "'r' || s.i"}), "tmpl"),
        (copy(t.continuation_requests, "continuation_id",
              {"continuation_id": cid, "request_id": "'q' || s.i"}), "tmpl"),
    ]  # fmt: skip
    for word in ("'approve'", "'g' || (s.i % 100)", "'w' || s.i",
                 "CASE WHEN s.i % 2 = 0 THEN 'even' ELSE 'odd' END",
                 "CASE WHEN s.i % 10 = 0 THEN 'tenth' ELSE 'most' END"):  # fmt: skip
        statements.append(
            (
                copy(t.continuation_terms, "continuation_id",
                     {"continuation_id": cid, "term": word}) + " AND o.term = 'template'",
                "tmpl",
            )
        )  # fmt: skip
    with store.engine.begin() as conn:
        for sql, tmpl in statements:
            conn.execute(sa.text(sql), {"n": tasks, "tmpl": tmpl})
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE" if pg else "ANALYZE"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--pg", metavar="URL", help="a PostgreSQL server (a scratch database)")
    parser.add_argument("--explain", action="store_true", help="print each generic plan")
    parser.add_argument("--soak", type=int, default=0, metavar="N", help="listings N times")
    args = parser.parse_args()
    database = scratch_database(args.pg, "kneo_bench_search") if args.pg else nullcontext(None)
    with database as url, tempfile.TemporaryDirectory() as tmp:
        settings = Settings()
        store = open_store(url, state_dir=Path(tmp), settings=settings)
        started = time.perf_counter()
        fill(store, args.tasks)
        print(f"{store.dialect.name}: {args.tasks:,} pending tasks filled in "
              f"{time.perf_counter() - started:.1f} s")  # fmt: skip
        for name, words in SEARCHES.items():
            times = []
            for _ in range(args.calls):
                begun = time.perf_counter()
                page = store.tasks.list_continuations(TaskQuery(q=" ".join(words), limit=50))
                times.append((time.perf_counter() - begun) * 1000)
            early, late = statistics.median(times[:5]), statistics.median(times[10:] or times)
            print(f"  {name:34} {len(page.items):3} found: calls 1-5 p50 {early:8.2f} ms, "
                  f"11-{args.calls} p50 {late:8.2f} ms, max {max(times):8.2f} ms")  # fmt: skip
            if args.explain and store.dialect.name == "postgresql":
                call = functools.partial(
                    store.tasks.list_continuations, TaskQuery(q=" ".join(words), limit=50)
                )
                seen = selects_run_by(store, call)
                for statement, params in seen:
                    if "LIMIT" in statement and "ORDER BY" in statement:
                        print("    generic plan:")
                        for line in generic_plan(store, statement, params):
                            print(f"      {line}")
        if args.soak and store.dialect.name == "postgresql":
            soak(store, args.soak)
        store.close()
    return 0


def seq_scans(store: Store) -> dict[str, int]:
    with store.engine.connect() as conn:
        conn.execute(sa.text("SELECT pg_stat_clear_snapshot()"))
        found = conn.execute(sa.text("SELECT relname, seq_scan FROM pg_stat_user_tables"))
        return {str(name): int(n) for name, n in found}


def soak(store: Store, rounds: int) -> None:
    """Every listing ``rounds`` times: the sequential scans each table took meanwhile."""
    listings = [
        *(
            lambda w=words: store.tasks.list_continuations(TaskQuery(q=" ".join(w)))
            for words in SEARCHES.values()
        ),
        lambda: store.tasks.list_continuations(),
        lambda: store.tasks.list_continuations(TaskQuery(sort="newest")),
        lambda: store.tasks.list_continuations(TaskQuery(assignee="ops")),
        lambda: store.tasks.list_continuations(TaskQuery(kind="approval")),
        lambda: store.tasks.list_continuations(TaskQuery(assignee=("ops", "nobody"))),
        lambda: store.runs.list_runs(limit=50),
        lambda: store.runs.list_runs(status="running", limit=50),
        lambda: store.runs.list_runs(status="paused", limit=50),
        lambda: store.audit.list_audit(AuditQuery(limit=50)),
        store.tasks.pending_counts_by_assignee,
    ]
    before = seq_scans(store)
    started = time.perf_counter()
    for _ in range(rounds):
        for listing in listings:
            listing()
    took = time.perf_counter() - started
    time.sleep(1.5)  # backends report their counters at most once a second
    after = seq_scans(store)
    scanned = {name: after[name] - before.get(name, 0) for name in after}
    print(
        f"  soak: {len(listings)} listings x {rounds} in {took:.1f} s; sequential scans: "
        + ", ".join(f"{name} {n}" for name, n in sorted(scanned.items()) if n)
        or "none"
    )


if __name__ == "__main__":
    raise SystemExit(main())
