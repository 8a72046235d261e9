"""Conformance: the inbox search's index (``continuation_terms``) and its listing.

A pending task is found by every word of its search text, workflow name and assignees,
while it is pending only; a search pages by keyset in the inbox's order; the words of a
query are parsed as the task's are; an existing database is indexed by migration 0013."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from kneo.clock import ManualClock
from kneo.errors import InvalidRequest
from kneo.setting_groups import RetentionDays
from kneo.store import Store, TaskQuery, open_store
from kneo.store import tables as t
from kneo.store.migrate import upgrade
from kneo.store.tasks.search import (
    MAX_LENGTH,
    MAX_QUERY_TERMS,
    MAX_TERMS,
    query_terms,
    task_terms,
    words,
)
from kneo.store.wire.dialects import dialect_for

from .helpers import new_run


def _pause(store: Store, cid: str, text: str, *, assignee: str | None = "ops") -> None:
    run_id = new_run(store, workflow_name="release-notes")
    with store.transaction() as tx:
        tx.put_continuation(
            cid,
            run_id=run_id,
            requests=[{"request_id": f"req_{cid}", "kind": "approval", "assignee": assignee}],
            search_text=[text],
        )


def _found(store: Store, query: str, **filters: object) -> list[str]:
    page = store.tasks.list_continuations(TaskQuery(q=query, **filters))  # type: ignore[arg-type]
    return [c.continuation_id for c in page.items]


def _terms(store: Store, cid: str) -> set[str]:
    k = t.continuation_terms.c
    with store.engine.connect() as conn:
        return set(conn.execute(sa.select(k.term).where(k.continuation_id == cid)).scalars())


def test_words_are_case_folded_whole_and_bounded() -> None:
    assert words("Ship the RELEASE, ship it! a 7 ΩMEGA café_2 ∂") == [
        "ship", "the", "release", "it", "a", "7", "ωmega", "café_2",
    ]  # fmt: skip
    assert words("x" * 100) == ["x" * MAX_LENGTH]
    assert task_terms(["Ann ann", None, "ANN bob"]) == ["ann", "bob"]
    # the texts' words in order, never joined across texts, long ones cut, MAX_TERMS at most
    assert task_terms(["a-b", "", "c", "d" * 50 + " A"]) == ["a", "b", "c", "d" * MAX_LENGTH]
    many = task_terms(["w0", " ".join(f"w{i}" for i in range(MAX_TERMS + 5))])
    assert many == [f"w{i}" for i in range(MAX_TERMS)]
    with pytest.raises(InvalidRequest) as err:
        query_terms(" ? - ")
    assert err.value.details["field"] == "q"
    with pytest.raises(InvalidRequest):
        query_terms(" ".join(f"w{i}" for i in range(MAX_QUERY_TERMS + 1)))


def test_a_pending_task_is_found_by_its_text_workflow_and_assignee(
    store: Store, clock: ManualClock
) -> None:
    _pause(store, "cont_a", "Approve the draft? quarterly figures for ACME", assignee="dana")
    clock.advance(1)
    _pause(store, "cont_b", "Approve the draft? holiday rota")
    assert _found(store, "acme") == ["cont_a"]
    assert _found(store, "Holiday") == ["cont_b"]
    assert _found(store, "approve draft") == ["cont_a", "cont_b"]
    assert _found(store, "approve draft", sort="newest") == ["cont_b", "cont_a"]
    assert _found(store, "release notes") == ["cont_a", "cont_b"]  # the workflow's name
    assert _found(store, "dana") == ["cont_a"] and _found(store, "ops") == ["cont_b"]
    assert _found(store, "acme holiday") == []  # every word must match
    assert _found(store, "acm") == []  # whole words, not prefixes
    assert _found(store, "draft", assignee="ops") == ["cont_b"]  # with the other filters
    counted = store.tasks.list_continuations(TaskQuery(q="draft", count=True))
    assert counted.total == 2


def test_only_pending_tasks_are_indexed(store: Store) -> None:
    _pause(store, "cont_a", "alpha beta")
    _pause(store, "cont_b", "alpha gamma")
    with store.transaction() as tx:  # a partial decision: still pending, still found
        cont = tx.get_continuation("cont_a")
        tx.put_continuation(
            "cont_a",
            run_id=cont.run_id,
            requests=cont.requests,
            expected_version=cont.version,
        )
    assert _found(store, "beta") == ["cont_a"]
    with store.transaction() as tx:
        cont = tx.get_continuation("cont_a")
        tx.put_continuation(
            "cont_a",
            run_id=cont.run_id,
            requests=cont.requests,
            status="resolved",
            expected_version=cont.version,
        )
        tx.delete_continuation("cont_b")
    assert _found(store, "alpha") == [] and _terms(store, "cont_a") == set()
    assert _terms(store, "cont_b") == set()


def test_one_words_total_counts_its_pending_tasks_once_each(store: Store) -> None:
    """A one-word search's ``total`` is counted from the word's own rows (each pending task
    holding it once, its project's): a word in a task's text twice and in its workflow's name
    counts the task once; a resolved task and another project's task are not counted, at any
    page size; with a filter or another word the tasks found are counted."""
    _pause(store, "cont_a", "alpha alpha release")  # (the workflow is release-notes too)
    _pause(store, "cont_b", "alpha")
    _pause(store, "cont_c", "alpha beta")
    _pause(store, "cont_d", "alpha", assignee="legal")
    with store.transaction() as tx:
        cont = tx.get_continuation("cont_c")
        tx.put_continuation(
            "cont_c", run_id=cont.run_id, requests=cont.requests, status="resolved",
            expected_version=cont.version,
        )  # fmt: skip
    other = store.for_project(store.projects.create_project("team-b").name)
    _pause(other, "cont_x", "alpha release")
    for limit in (1, 2, 100):
        page = store.tasks.list_continuations(TaskQuery(q="alpha", limit=limit))
        assert page.total == 3, limit
    assert store.tasks.list_continuations(TaskQuery(q="release", limit=1)).total == 3
    assert store.tasks.list_continuations(TaskQuery(q="alpha", assignee="ops")).total == 2
    assert store.tasks.list_continuations(TaskQuery(q="alpha beta")).total == 0
    resolved = store.tasks.list_continuations(TaskQuery(q="alpha", status="resolved"))
    assert (resolved.items, resolved.total) == ([], 0)  # only pending tasks are searched
    assert other.tasks.list_continuations(TaskQuery(q="alpha", limit=1)).total == 1
    seen: list[str] = []

    def record(conn: object, cursor: object, statement: str, *_: object) -> None:
        seen.append(statement)

    sa.event.listen(store.engine, "before_cursor_execute", record)
    try:
        store.tasks.list_continuations(TaskQuery(q="alpha", limit=1))
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", record)
    counts = [s for s in seen if "count(" in s.lower()]  # the word's rows alone, no task read
    assert counts and all(
        "continuations" not in s.replace("continuation_terms", "") for s in counts
    )


def test_a_search_pages_by_keyset(store: Store, clock: ManualClock) -> None:
    for i in range(7):
        _pause(store, f"cont_{i}", f"common word{i % 2}")
        clock.advance(1)
    seen, cursor = [], None
    while True:
        page = store.tasks.list_continuations(TaskQuery(q="common word0", limit=2, cursor=cursor))
        seen += [c.continuation_id for c in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == ["cont_0", "cont_2", "cont_4", "cont_6"]


def test_retention_removes_the_words_with_the_tasks(store: Store, clock: ManualClock) -> None:
    _pause(store, "cont_old", "stale request")
    with store.engine.begin() as conn:  # a run finished long ago, its task still listed
        conn.execute(sa.update(t.runs).values(status="succeeded", finished_at=clock.now()))
    clock.advance(timedelta(days=400).total_seconds())
    store.maintenance.prune_retention(RetentionDays(runs_days=30), clock.now())
    assert _terms(store, "cont_old") == set()


def test_migration_0013_indexes_the_pending_tasks_already_there(tmp_path: Path) -> None:
    url = sa.make_url(f"sqlite:///{tmp_path / 'old.sqlite'}")
    dialect = dialect_for(url)
    engine = dialect.create_engine(url)
    assert upgrade(engine, dialect, target="0012") == "0012"
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            sa.insert(t.runs).values(
                run_id="run_old", status="paused", target="workflow", workflow_name="wf-old",
                input_text="migrate me password=hunter2", spec={}, version=1,
                state={"pending": [{"request_id": "req_1", "prompt": "Old prompt here"}]},
                cancel_requested=False, created_at=now, updated_at=now, metadata={},
                checkpoint_seq=0, trace_seq=0,
            )
        )  # fmt: skip
        conn.execute(
            sa.insert(t.continuations).values(
                continuation_id="cont_old", run_id="run_old", status="pending",
                requests=[{"request_id": "req_1", "kind": "approval", "assignee": "zed"}],
                context={}, version=1, workflow_name="wf-old", created_at=now, updated_at=now,
            )
        )  # fmt: skip
    engine.dispose()
    migrated = open_store(str(url))
    assert {"old", "prompt", "migrate", "me", "wf", "zed"} <= _terms(migrated, "cont_old")
    assert "hunter2" not in _terms(migrated, "cont_old")  # redacted before indexing
    found = migrated.tasks.list_continuations(TaskQuery(q="zed prompt")).items
    assert [c.continuation_id for c in found] == ["cont_old"]
    migrated.close()
