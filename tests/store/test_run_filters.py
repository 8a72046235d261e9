"""Conformance: the runs listing's filters (session, workflow, error, creation window),
its search (``run_terms``, written with a run's outcome) and the inbox's deadline order, on
SQLite and PostgreSQL; migration 0023 indexes the outcomes already stored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from kneo.clock import ManualClock
from kneo.errors import InvalidRequest
from kneo.store import RunQuery, Store, TaskQuery, open_store
from kneo.store import tables as t
from kneo.store.migrate import upgrade
from kneo.store.tasks.search import outcome_terms
from kneo.store.wire.dialects import dialect_for

from .helpers import new_run


def _ids(store: Store, sort_by: str = "created_at", **filters: object) -> list[str]:
    page = store.runs.list_runs(
        RunQuery(limit=50, sort_by=sort_by, sort_order="asc", **filters)  # type: ignore[arg-type]
    )
    return [r.run_id for r in page.items]


@pytest.fixture
def runs(store: Store, clock: ManualClock) -> dict[str, str]:
    """Four runs a second apart: two in a session, one failed, outputs to search."""
    made = {}
    for name, fields in (
        ("a", {"session_id": "s1", "workflow_name": "triage"}),
        ("b", {"session_id": "s1", "workflow_kind": "graph"}),
        ("c", {"workflow_name": "triage"}),
        ("d", {}),
    ):
        made[name] = new_run(store, **fields)
        clock.advance(1)
    with store.transaction() as tx:
        tx.update_run(made["a"], output_text="Refund approved for order 7")
        tx.update_run(made["b"], output_text="Refund denied", error=None)
        tx.update_run(made["c"], error={"code": "boom", "message": "Ledger unreachable"})
    return made


def test_exact_filters_and_the_error_flag(store: Store, runs: dict[str, str]) -> None:
    assert _ids(store, session_id="s1") == [runs["a"], runs["b"]]
    assert _ids(store, session_id="nobody") == []
    assert _ids(store, workflow_name="triage") == [runs["a"], runs["c"]]
    assert _ids(store, workflow_kind="graph") == [runs["b"]]
    assert _ids(store, has_error=True) == [runs["c"]]
    assert _ids(store, has_error=False) == [runs["a"], runs["b"], runs["d"]]
    assert _ids(store, "updated_at", has_error=True) == [runs["c"]]
    assert store.runs.get_run(runs["a"]).session_id == "s1"


def test_the_creation_window(store: Store, runs: dict[str, str]) -> None:
    created = {k: store.runs.get_run(v).created_at for k, v in runs.items()}
    assert _ids(store, created_after=created["b"]) == [runs["c"], runs["d"]]
    assert _ids(store, created_before=created["b"]) == [runs["a"]]
    window = {"created_after": created["a"], "created_before": created["d"]}
    assert _ids(store, **window) == [runs["b"], runs["c"]]


def test_search_finds_whole_words_of_output_and_error(store: Store, runs: dict[str, str]) -> None:
    assert _ids(store, q="refund") == [runs["a"], runs["b"]]
    assert _ids(store, q="REFUND approved") == [runs["a"]]
    assert _ids(store, q="ledger") == [runs["c"]]
    assert _ids(store, q="refun") == []  # whole words only
    assert _ids(store, q="no-such-text") == []
    assert _ids(store, "updated_at", q="refund denied") == [runs["b"]]
    assert _ids(store, q="refund", session_id="s1", workflow_name="triage") == [runs["a"]]
    # a new outcome replaces the run's words
    with store.transaction() as tx:
        tx.update_run(runs["a"], output_text="Escalated to finance")
    assert _ids(store, q="refund") == [runs["b"]]
    assert _ids(store, q="finance") == [runs["a"]]
    with pytest.raises(InvalidRequest):
        _ids(store, q="...")


@pytest.mark.parametrize("sort_by", ["created_at", "updated_at", "status"])
def test_search_pages_by_cursor_in_order(store: Store, clock: ManualClock, sort_by: str) -> None:
    """In every order, the search's pages follow each other by cursor, counted: the few
    runs of a rare word looked up by key and sorted (orders but ``created_at``), as the
    walk of the order's index does."""
    made = []
    for i in range(5):
        run_id = new_run(store)
        with store.transaction() as tx:
            tx.update_run(run_id, output_text=f"common word {i}", status="succeeded")
        made.append(run_id)
        clock.advance(1)
    for run_id in reversed(made):  # updated in the reverse order of creation
        with store.transaction() as tx:
            tx.update_run(run_id, output_text=f"common word {made.index(run_id)} again")
        clock.advance(1)
    expected = made[::-1] if sort_by != "updated_at" else made
    seen: list[str] = []
    cursor = None
    while True:
        page = store.runs.list_runs(RunQuery(limit=2, sort_by=sort_by, sort_order="desc", cursor=cursor,
            q="common word"))  # fmt: skip
        seen += [r.run_id for r in page.items]
        assert page.total == 5
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == expected


def test_a_secret_is_never_a_term() -> None:
    terms = outcome_terms("token sk-live-0123456789abcdefghijklmnop done", None)
    assert "done" in terms and not any("0123456789" in term for term in terms)


def test_finish_run_indexes_the_outcome(store: Store) -> None:
    run_id = new_run(store)
    run = store.runs.get_run(run_id)
    with store.transaction() as tx:
        tx.finish_run(run, expected_version=run.version, status="failed",
                      error={"code": "x", "message": "Quota exhausted"})  # fmt: skip
    assert _ids(store, q="quota") == [run_id]
    assert _ids(store, has_error=True) == [run_id]


def test_finish_run_replaces_the_words_of_an_outcome_written_before(store: Store) -> None:
    """A run's first outcome adds its words (on PostgreSQL in the outcome's one statement);
    an outcome written over an earlier one drops the earlier one's words."""
    run_id = new_run(store)
    with store.transaction() as tx:
        tx.update_run(run_id, output_text="Quota exhausted")
    run = store.runs.get_run(run_id)
    with store.transaction() as tx:
        tx.finish_run(run, expected_version=run.version, status="succeeded",
                      output_text="Ledger balanced")  # fmt: skip
    assert _ids(store, q="quota") == []
    assert _ids(store, q="ledger") == [run_id]


def test_the_inbox_by_deadline_undated_last(store: Store, clock: ManualClock) -> None:
    now = clock.now()
    made = {}
    for name, expires in (("late", 30), ("none", None), ("soon", 10), ("none2", None)):
        run_id = new_run(store)
        with store.transaction() as tx:
            tx.put_continuation(
                f"c_{name}",
                run_id=run_id,
                requests=[{"request_id": f"r_{name}", "kind": "approval"}],
                expires_at=now + timedelta(seconds=expires) if expires else None,
            )
        made[name] = f"c_{name}"
        clock.advance(1)

    def order(sort: str, offset: int = 0, limit: int = 10) -> list[str]:
        page = store.tasks.list_continuations(TaskQuery(sort=sort, offset=offset, limit=limit))  # type: ignore[arg-type]
        return [c.continuation_id for c in page.items]

    assert order("expiring") == ["c_soon", "c_late", "c_none", "c_none2"]
    assert order("expiring_last") == ["c_late", "c_soon", "c_none2", "c_none"]
    assert order("expiring", offset=1, limit=2) == ["c_late", "c_none"]
    assert order("expiring", offset=3) == ["c_none2"]
    assert store.tasks.list_continuations(TaskQuery(sort="expiring", limit=1)).total == 4  # type: ignore[arg-type]


def test_migration_0023_indexes_the_outcomes_already_there(tmp_path: Path) -> None:
    url = sa.make_url(f"sqlite:///{tmp_path / 'old.sqlite'}")
    dialect = dialect_for(url)
    engine = dialect.create_engine(url)
    assert upgrade(engine, dialect, target="0022") == "0022"
    at = datetime(2026, 1, 1, tzinfo=UTC)
    base = {
        "status": "succeeded", "target": "workflow", "input_text": "x", "spec": {}, "state": {},
        "version": 1, "cancel_requested": False, "created_at": at, "updated_at": at,
        "metadata": {}, "checkpoint_seq": 0, "trace_seq": 0,
    }  # fmt: skip
    with engine.begin() as conn:
        for extra in (  # the columns of 0022 only: no session_id yet
            {"run_id": "r1", "output_text": "Invoice paid"},
            {"run_id": "r2", "error": {"message": "Invoice rejected"}},
            {"run_id": "r3"},
        ):
            conn.execute(sa.insert(t.runs).values(**base, **extra))
    engine.dispose()
    store = open_store(str(url))
    try:
        assert _ids(store, q="invoice") == ["r1", "r2"]
        assert _ids(store, q="rejected") == ["r2"]
        assert _ids(store, has_error=True) == ["r2"]
    finally:
        store.close()
