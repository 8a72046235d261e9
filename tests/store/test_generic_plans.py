"""Search and list plans that stay good as a server lives (issue 54, item 5).

psycopg prepares a statement on its 5th run and PostgreSQL may then run a *generic* plan,
made without the parameters' values: it cannot see which search word, label or status is
rare, and hashed every row of a common word. So listings run unprepared (planned per call
with their values, ``kneo.store.wire.pg_hooks.PLAN_PER_CALL``) and the search's probe keeps an
``OFFSET`` barrier, so even a generic plan walks the lead word's rows and probes each task.
Checked on the real statements after more runs than the prepare threshold: none is
prepared (while an unmarked one is: the check can fail), each run's plan walks and probes
(``EXPLAIN``; ``EXPLAIN QUERY PLAN`` on SQLite), and so does the generic plan
(``plan_cache_mode = force_generic_plan``). A two-word search walks the rarer word's rows
however common both are.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from kneo.settings import Settings
from kneo.store import RunQuery, Store, TaskQuery, open_store
from kneo.store.tasks import reads as task_reads
from kneo.store.tasks.reads import _rarity

from .helpers import generic_plan, selects_run_by
from .test_list_plans import _bad_steps, _fill, _plan

TASKS = 5_000
#: More runs than psycopg's prepare threshold (5) and PostgreSQL's custom-plan tries (5).
RUNS = 12


@pytest.fixture(params=["sqlite", "postgresql"], scope="module")
def filled(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Store]:
    # the bounded count (KNEO_SERV_MAX_LIST_COUNT): an exact total, the default, counts every
    # matching row by design (docs/performance.md, "List totals")
    settings = Settings.from_env({"KNEO_SERV_MAX_LIST_COUNT": "1000"})
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_session_databases").new()
        store = open_store(url, settings=settings)
    else:
        store = open_store(None, settings=settings, state_dir=tmp_path_factory.mktemp("generic"))
    _fill(store, TASKS)
    yield store
    store.close()


def _hashes_a_word(plan: list[str]) -> bool:
    return any(re.search(r"Hash (Semi |Anti )?Join|HashAggregate|Seq Scan", line) for line in plan)


def _probing_statements(store: Store, search: list[str]) -> list[tuple[str, Any]]:
    for _ in range(RUNS):
        assert store.tasks.list_continuations(TaskQuery(q=" ".join(search), limit=20)).items
    calls = selects_run_by(
        store, lambda: store.tasks.list_continuations(TaskQuery(q=" ".join(search), limit=20))
    )
    # the page and its bounded count: each joins the lead word's rows and probes the other
    return [(s, p) for s, p in calls if "continuation_terms_1" in s]


@pytest.mark.parametrize("search", [["approve", "g3"], ["g3", "approve"], ["w000003", "approve"]])
def test_a_two_word_search_walks_the_rarer_word_and_probes(
    filled: Store, search: list[str]
) -> None:
    """Past the prepare threshold, each run of the search is still planned with its words:
    the lead word's rows walked, the other probed per task, nothing hashed or scanned."""
    statements = _probing_statements(filled, search)
    assert statements
    for statement, params in statements:
        plan = _plan(filled, statement, params)
        assert not _bad_steps(filled, statement, plan), plan
        if filled.dialect.name == "sqlite":
            continue
        assert not _hashes_a_word(plan), plan
        assert any("ix_continuation_terms_continuation_id_term" in line for line in plan), plan
        # and the probe stays one if a generic plan ever runs it (its ``OFFSET`` barrier)
        assert re.search(r"\s+(LIMIT ALL\s+)?OFFSET\s+(0|%\(\w+\)s(::INTEGER)?)\)", statement)
        assert not _hashes_a_word(generic_plan(filled, statement, params))


def test_search_and_list_statements_are_never_prepared(filled: Store) -> None:
    """The listings run unprepared, so PostgreSQL plans every run with its values: after
    more runs than the threshold, the connection holds no prepared listing statement, while
    an unmarked statement run as often is prepared (so the check can fail)."""
    if filled.dialect.name != "postgresql":
        pytest.skip("SQLite plans each statement from the schema: no generic plans")
    _probing_statements(filled, ["approve", "g5"])
    for _ in range(RUNS):
        filled.tasks.list_continuations(TaskQuery(assignee="a7", limit=20))
        filled.runs.list_runs(RunQuery(status="running", limit=20))
        filled.tasks.get_continuation("cont_000003")
    with filled.engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        cursor = raw.cursor()
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [str(row[0]) for row in cursor.fetchall()]
    assert not [s for s in prepared if "ORDER BY" in s or "count(" in s], prepared
    assert any("continuation_id = $1" in s for s in prepared), prepared


def test_two_common_words_walk_the_rarer(filled: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both words past the first count's bound (here 100 rows, as 5,000 are at 100,000
    tasks): the rarer is still the one walked (its ``term`` is the page statement's lead),
    whichever the query names first."""
    monkeypatch.setattr(task_reads, "_RARE", 100)
    many, rarer = "common_a", "common_b"
    try:
        _two_common_words(filled, many, rarer)
    finally:  # the module's store goes back as it was, visibility map included: the soak
        # below plans on it (a count of a common word reads the index only on visible pages)
        with filled.engine.begin() as conn:
            conn.execute(
                sa.text("DELETE FROM continuation_terms WHERE term IN (:many, :rarer)"),
                {"many": many, "rarer": rarer},
            )
        if filled.dialect.name == "postgresql":
            autocommit = filled.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            with autocommit as conn:
                conn.execute(sa.text("VACUUM ANALYZE continuation_terms"))


def _two_common_words(filled: Store, many: str, rarer: str) -> None:
    with filled.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO continuation_terms (term, created_at, continuation_id)"
                " SELECT CASE WHEN continuation_id LIKE '%0' THEN :rarer ELSE :many END,"
                " created_at, continuation_id FROM continuation_terms WHERE term = 'approve'"
            ),
            {"many": many, "rarer": rarer},
        )
    counts = dict(_rarity_counts(filled, [many, rarer]))
    assert 100 < counts[rarer] < counts[many], counts
    for search in ([many, rarer], [rarer, many]):
        calls = selects_run_by(
            filled,
            functools.partial(filled.tasks.list_continuations, TaskQuery(q=" ".join(search))),
        )
        page = [(s, p) for s, p in calls if "continuation_terms_1" in s]
        # the first walk is bounded (a few pages' rows of either word: issue 73), whichever
        # leads; the page of words rarely together then walks the rarer whole
        bounded = [(s, p) for s, p in page if "lead_rows" in s]
        assert bounded and all("LIMIT" in s.split("lead_rows")[0] for s, _ in bounded), page
        page = [(s, p) for s, p in page if "lead_rows" not in s]
        assert page, calls
        for _, params in page:  # the lead's term is bound before the probe's
            values = list(params.values()) if isinstance(params, dict) else list(params)
            assert [v for v in values if v in (many, rarer)] == [rarer, many], params
    # every word common: the words' rows are joined by the inbox's order, with the same
    # answers (the two never together; the rarer with a word of every task: the rarer's)
    assert not filled.tasks.list_continuations(TaskQuery(q=f"{many} {rarer}")).items
    both = filled.tasks.list_continuations(TaskQuery(q=f"approve {rarer}", limit=1000))
    assert both.total == counts[rarer] == len(both.items)
    assert all(c.continuation_id.endswith("0") for c in both.items)
    assert both.items == sorted(both.items, key=lambda c: (c.created_at, c.continuation_id))


def _rarity_counts(store: Store, words: list[str]) -> list[tuple[str, int]]:
    with store.engine.connect() as conn:
        return list(_rarity(conn, words).items())


BIG_TABLES = ("runs", "continuations", "continuation_requests", "continuation_terms")


def _seq_scans(store: Store) -> dict[str, int]:
    with store.engine.connect() as conn:
        conn.execute(sa.text("SELECT pg_stat_clear_snapshot()"))
        found = conn.execute(sa.text("SELECT relname, seq_scan FROM pg_stat_user_tables"))
        return {str(name): int(n) for name, n in found}


def test_listings_past_warm_up_scan_no_big_table(filled: Store) -> None:
    """A short soak: the inbox's and the runs' listings, counted as the console and the API
    ask, more times than the prepare threshold; ``pg_stat_user_tables`` then shows no
    sequential scan of a big table (a capped count once scanned ``continuations`` and
    ``runs`` whole whenever few rows matched)."""
    if filled.dialect.name != "postgresql":
        pytest.skip("pg_stat_user_tables is PostgreSQL's")
    listings = [
        lambda: filled.tasks.list_continuations(),
        lambda: filled.tasks.list_continuations(TaskQuery(sort="newest")),
        lambda: filled.tasks.list_continuations(TaskQuery(assignee="a7")),
        lambda: filled.tasks.list_continuations(TaskQuery(assignee=("a7", "a8"))),
        lambda: filled.tasks.list_continuations(TaskQuery(kind="input")),
        lambda: filled.tasks.list_continuations(TaskQuery(q="approve g3")),
        lambda: filled.tasks.list_continuations(TaskQuery(q="w000003")),
        lambda: filled.runs.list_runs(RunQuery(limit=50)),
        lambda: filled.runs.list_runs(RunQuery(status="running", limit=50)),
        lambda: filled.runs.list_runs(RunQuery(status=("paused", "failed"), limit=50)),
    ]
    before = _seq_scans(filled)
    for _ in range(RUNS):
        for listing in listings:
            assert listing().total is not None
    with filled.engine.connect() as conn:
        conn.execute(sa.text("SELECT pg_stat_force_next_flush()"))
    deadline = time.monotonic() + 3
    while True:  # a backend reports its counters when idle, at most once a second
        after = _seq_scans(filled)
        scanned = {n: after[n] - before.get(n, 0) for n in BIG_TABLES}
        if any(scanned.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not any(scanned.values()), scanned
