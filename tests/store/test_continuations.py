"""Conformance: continuations (pending human requests), their listing and versioning."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from kneo.clock import ManualClock
from kneo.errors import Conflict, InvalidRequest, NotFound
from kneo.store import Store, TaskQuery
from kneo.store import tables as t
from kneo.store.wire import executor
from kneo.store.wire.executor import PostgresExecutor

from .helpers import new_run


def _req(
    request_id: str, assignee: str | None = "ops", kind: str = "approval", status: str = "pending"
) -> dict[str, object]:
    return {
        "request_id": request_id,
        "kind": kind,
        "assignee": assignee,
        "status": status,
        "prompt": "ok?",
    }


def test_put_and_get_round_trip(store: Store, clock: ManualClock) -> None:
    """A continuation reads back with its requests, context and the run's workflow kind."""
    run_id = new_run(store, workflow_kind="graph")
    expires = clock.now() + timedelta(hours=2)
    with store.transaction() as tx:
        written = tx.put_continuation(
            "cont_1",
            run_id=run_id,
            requests=[_req("req_1")],
            context={"step": "s1"},
            expires_at=expires,
        )
    read = store.tasks.get_continuation("cont_1")
    assert read == written
    assert (read.status, read.version, read.workflow_kind) == ("pending", 1, "graph")
    assert read.requests[0]["prompt"] == "ok?" and read.expires_at == expires
    assert [r["request_id"] for r in read.requests] == ["req_1"]


def test_continuation_without_run(store: Store) -> None:
    """A task that belongs to no run (a promotion approval) is a valid continuation."""
    with store.transaction() as tx:
        tx.put_continuation(
            "cont_p", run_id=None, requests=[_req("req_p")], workflow_kind="promotion"
        )
    assert store.tasks.get_continuation("cont_p").run_id is None
    assert store.tasks.list_continuations(TaskQuery(workflow_kind="promotion")).total == 1


def test_versioned_replace_and_stale_writer(store: Store) -> None:
    """Replacing with the current version bumps it; a stale version is stale_state."""
    run_id = new_run(store)
    with store.transaction() as tx:
        tx.put_continuation("cont_1", run_id=run_id, requests=[_req("req_1"), _req("req_2")])
    with store.transaction() as tx:
        updated = tx.put_continuation(
            "cont_1",
            run_id=run_id,
            expected_version=1,
            requests=[_req("req_1", status="resolved"), _req("req_2")],
        )
    assert updated.version == 2 and updated.requests[0]["status"] == "resolved"
    with pytest.raises(Conflict) as err, store.transaction() as tx:
        tx.put_continuation("cont_1", run_id=run_id, expected_version=1, requests=[])
    assert err.value.code == "stale_state"
    with pytest.raises(Conflict) as dup, store.transaction() as tx:
        tx.put_continuation("cont_1", run_id=run_id, requests=[_req("req_3")])
    assert dup.value.code == "already_exists"
    with pytest.raises(NotFound), store.transaction() as tx:
        tx.put_continuation("cont_none", run_id=run_id, expected_version=1, requests=[])


def _index(store: Store) -> list[tuple[str, str]]:
    r = t.continuation_requests.c
    with store.engine.connect() as conn:
        query = sa.select(r.request_id, r.status).order_by(r.request_id)
        return [(str(a), str(b)) for a, b in conn.execute(query)]


def test_a_replace_of_the_same_requests_keeps_their_index_rows_statuses_right(
    store: Store,
) -> None:
    """The request index follows a replace ``same_requests``: statuses set in place when
    they are one (the task resolved), rows written anew when they differ (one decided)."""
    run_id = new_run(store)
    with store.transaction() as tx:
        tx.put_continuation("cont_1", run_id=run_id, requests=[_req("req_1"), _req("req_2")])
    with store.transaction() as tx:
        tx.put_continuation(
            "cont_1", run_id=run_id, expected_version=1, same_requests=True,
            requests=[_req("req_1", status="resolved"), _req("req_2")],
        )  # fmt: skip
    assert _index(store) == [("req_1", "resolved"), ("req_2", "pending")]
    assert store.tasks.list_continuations(TaskQuery(assignee="ops")).total == 1
    with store.transaction() as tx:
        tx.put_continuation(
            "cont_1", run_id=run_id, expected_version=2, same_requests=True, status="resolved",
            requests=[_req("req_1", status="resolved"), _req("req_2", status="resolved")],
        )  # fmt: skip
    assert _index(store) == [("req_1", "resolved"), ("req_2", "resolved")]
    assert store.tasks.list_continuations(TaskQuery(assignee="ops")).total == 0


def test_requests_need_unique_ids(store: Store) -> None:
    """Requests without a request_id or with duplicates are refused."""
    run_id = new_run(store)
    with pytest.raises(InvalidRequest), store.transaction() as tx:
        tx.put_continuation("cont_1", run_id=run_id, requests=[{"kind": "approval"}])
    with pytest.raises(InvalidRequest), store.transaction() as tx:
        tx.put_continuation("cont_1", run_id=run_id, requests=[_req("r"), _req("r")])


def test_unknown_run_is_not_found(store: Store) -> None:
    """A continuation for a run that does not exist is refused."""
    with pytest.raises(NotFound), store.transaction() as tx:
        tx.put_continuation(
            "cont_x", run_id="run_missing", requests=[_req("req_x")], workflow_kind="sequential"
        )


def test_delete_continuation(store: Store) -> None:
    """Deleting removes the continuation and its request index."""
    run_id = new_run(store)
    with store.transaction() as tx:
        tx.put_continuation("cont_1", run_id=run_id, requests=[_req("req_1")])
    with store.transaction() as tx:
        assert tx.delete_continuation("cont_1") is True
        assert tx.delete_continuation("cont_1") is False
    with pytest.raises(NotFound):
        store.tasks.get_continuation("cont_1")


def test_listing_filters_sorts_and_counts(store: Store, clock: ManualClock) -> None:
    """The inbox filters by run, kind, assignee, escalation and age; counts per assignee."""
    seq = new_run(store, workflow_kind="sequential")
    graph = new_run(store, workflow_kind="graph")
    start = clock.now()
    with store.transaction() as tx:
        tx.put_continuation("cont_a", run_id=seq, requests=[_req("r1", "ann")])
    clock.advance(60)
    with store.transaction() as tx:
        tx.put_continuation(
            "cont_b", run_id=graph, requests=[_req("r2", "bob", kind="tool_call"), _req("r3", None)]
        )
    clock.advance(60)
    with store.transaction() as tx:
        tx.put_continuation(
            "cont_c",
            run_id=graph,
            escalated_at=clock.now(),
            requests=[_req("r4", "ann", status="resolved"), _req("r5", "bob")],
        )
        tx.put_continuation(
            "cont_done",
            run_id=seq,
            status="resolved",
            requests=[_req("r6", "ann", status="resolved")],
        )

    def ids(**kw: object) -> list[str]:
        return [c.continuation_id for c in store.tasks.list_continuations(TaskQuery(**kw)).items]  # type: ignore[arg-type]

    assert ids() == ["cont_a", "cont_b", "cont_c"]
    assert ids(sort="newest") == ["cont_c", "cont_b", "cont_a"]
    assert ids(run_id=graph) == ["cont_b", "cont_c"]
    assert ids(workflow_kind="sequential") == ["cont_a"]
    assert ids(assignee="ann") == ["cont_a"]  # ann's request in cont_c is resolved
    assert ids(assignee="bob") == ["cont_b", "cont_c"]
    assert ids(kind="tool_call") == ["cont_b"]
    assert ids(escalated=True) == ["cont_c"]
    assert ids(escalated=False) == ["cont_a", "cont_b"]
    assert ids(older_than=start + timedelta(seconds=90)) == ["cont_a", "cont_b"]
    assert ids(status=None, run_id=seq) == ["cont_a", "cont_done"]
    page = store.tasks.list_continuations(TaskQuery(limit=1, offset=1))
    assert [c.continuation_id for c in page.items] == ["cont_b"] and page.total == 3
    assert store.tasks.pending_counts_by_assignee() == {"ann": 1, "bob": 2, None: 1}
    with pytest.raises(InvalidRequest):
        store.tasks.list_continuations(TaskQuery(sort="sideways"))  # type: ignore[arg-type]


def test_listing_by_expiry(store: Store, clock: ManualClock) -> None:
    """``expires_before`` keeps the continuations due by then: the timeout sweep's query."""
    now = clock.now()
    for name, delta in (("due", -60), ("now", 0), ("later", 60)):
        run_id = new_run(store)
        with store.transaction() as tx:
            tx.put_continuation(
                f"cont_{name}",
                run_id=run_id,
                requests=[_req(f"req_{name}")],
                expires_at=now + timedelta(seconds=delta),
            )
    run_id = new_run(store)
    with store.transaction() as tx:
        tx.put_continuation("cont_never", run_id=run_id, requests=[_req("req_never")])
    due = store.tasks.list_continuations(TaskQuery(expires_before=now))
    assert sorted(c.continuation_id for c in due.items) == ["cont_due", "cont_now"]
    assert due.total == 2
    assert store.tasks.list_continuations().total == 4


def test_run_states_in_one_read(store: Store) -> None:
    """``run_states`` returns each existing run's state by id and skips unknown ids."""
    first, second = new_run(store), new_run(store)
    with store.transaction() as tx:
        tx.update_run(first, state={"pending": [{"request_id": "req_1"}]})
    states = store.runs.run_states([first, second, first, "run_missing"])
    assert states == {first: {"pending": [{"request_id": "req_1"}]}, second: {}}
    assert store.runs.run_states([]) == {}


def test_labels_come_from_the_run_and_survive_a_replace(store: Store) -> None:
    """A run's continuation carries its workflow name and environment; a replace keeps them;
    a task without a run is labelled by its writer; the inbox filters on both."""
    run_id = new_run(store, workflow_name="billing", environment="prod")
    with store.transaction() as tx:
        tx.put_continuation("cont_r", run_id=run_id, requests=[_req("r1")])
        tx.put_continuation(
            "cont_p",
            run_id=None,
            requests=[_req("r2")],
            workflow_kind="promotion",
            workflow_name="mailer",
            environment="staging",
        )
    cont = store.tasks.get_continuation("cont_r")
    assert (cont.workflow_name, cont.environment) == ("billing", "prod")
    with store.transaction() as tx:
        tx.put_continuation(
            "cont_p",
            run_id=None,
            requests=[_req("r2", status="resolved")],
            workflow_kind="promotion",
            status="resolved",
            expected_version=1,
        )
    assert store.tasks.get_continuation("cont_p").environment == "staging"

    def ids(**kw: object) -> list[str]:
        return [
            c.continuation_id
            for c in store.tasks.list_continuations(TaskQuery(status=None, **kw)).items
        ]  # type: ignore[arg-type]

    assert ids(environment="prod") == ["cont_r"]
    assert ids(workflow_name="mailer") == ["cont_p"]
    assert ids(environment="dev") == []


@pytest.mark.parametrize("sort", ["oldest", "newest"])
def test_keyset_pages_walk_every_row_once(store: Store, clock: ManualClock, sort: str) -> None:
    """``next_cursor`` pages through ties on created_at and rows added between pages, each
    row exactly once, in order; the last page has no cursor."""
    run_id = new_run(store)
    with store.transaction() as tx:
        for i in range(7):  # created in one transaction: all share one created_at
            tx.put_continuation(f"cont_{i:02d}", run_id=run_id, requests=[_req(f"r{i}")])
    clock.advance(1)
    with store.transaction() as tx:
        tx.put_continuation("cont_later", run_id=run_id, requests=[_req("r_later")])
    expected = [f"cont_{i:02d}" for i in range(7)] + ["cont_later"]
    if sort == "newest":
        expected.reverse()
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        page = store.tasks.list_continuations(TaskQuery(sort=sort, limit=3, cursor=cursor))  # type: ignore[arg-type]
        seen += [c.continuation_id for c in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
        if len(seen) == 3:  # a row added mid-walk at the far end is still reached once
            clock.advance(1)
            with store.transaction() as tx:
                tx.put_continuation("cont_new", run_id=run_id, requests=[_req("r_new")])
            if sort == "oldest":
                expected.append("cont_new")
    assert seen == expected


def test_bad_cursors_are_invalid_requests(store: Store) -> None:
    """A cursor that is not one, one made for the other order, or a cursor with an offset."""
    run_id = new_run(store)
    with store.transaction() as tx:
        tx.put_continuation("cont_a", run_id=run_id, requests=[_req("ra")])
        tx.put_continuation("cont_b", run_id=run_id, requests=[_req("rb")])
    cursor = store.tasks.list_continuations(TaskQuery(limit=1)).next_cursor
    assert cursor is not None
    for bad in ("not-a-cursor", "W10", cursor[:-2]):
        with pytest.raises(InvalidRequest) as caught:
            store.tasks.list_continuations(TaskQuery(cursor=bad))
        assert caught.value.details.get("field") == "cursor"
    with pytest.raises(InvalidRequest):
        store.tasks.list_continuations(TaskQuery(sort="newest", cursor=cursor))
    with pytest.raises(InvalidRequest):
        store.tasks.list_continuations(TaskQuery(cursor=cursor, offset=1))


def _pause(tx: Any, run: Any, continuation_id: str = "cont_w") -> None:
    """A pause as the platform writes it: the new task first (with the run's labels: nothing
    to read), then the run's outcome."""
    tx.put_continuation(
        continuation_id,
        run_id=run.run_id,
        workflow_kind="sequential",
        workflow_name="wf",
        environment="dev",
        requests=[_req("req_w", assignee="alice"), _req("req_v", assignee="bob")],
        search_text=["zeppelin", "launch"],
        with_outcome=True,
    )
    tx.finish_run(run, expected_version=run.version, status="paused")


def _running(store: Store) -> Any:
    with store.transaction() as tx:
        return tx.create_run(target="workflow", input_text="x", status="running")


@pytest.mark.parametrize("before", [False, True])
def test_a_pause_writes_its_task_with_the_run_outcome(
    store: Store, before: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The task goes with the outcome: on PostgreSQL, with nothing before it, in the
    outcome's one statement; else (SQLite, or a statement came first) before it. Either way
    the task, its request index and its search rows are all there."""
    alone: list[Any] = []
    original = PostgresExecutor.alone

    def spy(self: PostgresExecutor, sql: str, args: Any) -> Any:
        found = original(self, sql, args)
        alone.append(found is not None and "continuation_terms" in sql)
        return found

    monkeypatch.setattr(PostgresExecutor, "alone", spy)
    run = _running(store)
    with store.transaction() as tx:
        if before:
            tx.add_trace_events(run.run_id, [{"event_type": "before"}])
        _pause(tx, run)
    assert store.runs.get_run(run.run_id).status == "paused"
    cont = store.tasks.get_continuation("cont_w")
    assert (cont.run_id, cont.status, cont.version) == (run.run_id, "pending", 1)
    assert [r["request_id"] for r in cont.requests] == ["req_w", "req_v"]
    assert store.tasks.list_continuations(TaskQuery(assignee="bob")).total == 1
    assert store.tasks.list_continuations(TaskQuery(q="zeppelin")).total == 1
    postgres = store.engine.dialect.name == "postgresql"
    assert alone == ([True] if postgres and not before else [])


def test_a_stale_pause_writes_no_task(store: Store) -> None:
    run = _running(store)
    with store.transaction() as tx:
        tx.update_run(run.run_id, expected_version=run.version, cancel_requested=True)
    with pytest.raises(Conflict) as caught, store.transaction() as tx:
        _pause(tx, run)
    assert caught.value.code == "stale_state"
    with pytest.raises(NotFound):
        store.tasks.get_continuation("cont_w")
    assert store.tasks.list_continuations(TaskQuery(q="zeppelin")).total == 0
    assert store.runs.get_run(run.run_id).status == "running"


def test_a_pause_whose_task_id_is_taken_is_already_exists_and_writes_nothing(
    store: Store,
) -> None:
    other = new_run(store)
    with store.transaction() as tx:
        tx.put_continuation("cont_w", run_id=other, requests=[_req("req_o")])
    run = _running(store)
    with pytest.raises(Conflict) as caught, store.transaction() as tx:
        _pause(tx, run)
    assert caught.value.code == "already_exists"
    assert store.runs.get_run(run.run_id).status == "running"
    assert store.tasks.get_continuation("cont_w").run_id == other
    assert store.tasks.list_continuations(TaskQuery(q="zeppelin")).total == 0


def test_a_task_meant_for_an_outcome_that_never_came_is_written_at_commit(store: Store) -> None:
    run_id = new_run(store)
    with store.transaction() as tx:
        tx.put_continuation("cont_w", run_id=run_id, requests=[_req("req_w")], with_outcome=True)
    assert store.tasks.get_continuation("cont_w").run_id == run_id


def test_a_locked_task_and_run_are_written_without_reading_back(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A locked read of a task reads its run with it, in one statement; their writes at
    those versions read nothing back (no ``RETURNING``) and go out as one statement with the
    commit, and the records they give are what is stored; a later plain update of the run
    is read back as before."""
    run_id = new_run(store, status="paused")
    with store.transaction() as tx:
        tx.put_continuation("cont_l", run_id=run_id, requests=[_req("req_1")], context={"a": 1})
    sent: list[str] = []  # what a PostgreSQL transaction sent, a batch as one statement
    original, batch = PostgresExecutor.execute, executor.compound

    def spy(self: PostgresExecutor, sql: str, args: Any) -> Any:
        sent.append(sql)
        return original(self, sql, args)

    def batched(statements: Any) -> Any:
        sent.append(batch(statements)[0])
        return batch(statements)

    monkeypatch.setattr(PostgresExecutor, "execute", spy)
    monkeypatch.setattr(executor, "compound", batched)
    with store.transaction() as tx:
        cont = tx.get_continuation("cont_l", for_update=True)
        run = tx.get_run(run_id, for_update=True)
        assert (cont.run_id, run.run_id) == (run_id, run_id)
        assert cont == store.tasks.get_continuation("cont_l")
        assert run == store.runs.get_run(run_id)
        task = tx.put_continuation(
            "cont_l", run_id=run_id, requests=[_req("req_1", status="resolved")],
            context=cont.context, status="resolved", expected_version=cont.version,
            workflow_kind=cont.workflow_kind, same_requests=True,
        )  # fmt: skip
        tx.add_trace_events(run_id, [{"event_type": "decided"}])
        updated = tx.update_run(run_id, expected_version=run.version, status="running")
    assert task == store.tasks.get_continuation("cont_l") and task.version == 2
    stored = store.runs.get_run(run_id)
    assert updated == stored and updated.trace_seq == stored.trace_seq
    assert (stored.status, stored.version) == ("running", run.version + 1)
    assert store.runs.list_trace(run_id, event_type="decided").total == 1
    if store.engine.dialect.name == "postgresql":
        writes = [s for s in sent if "UPDATE runs" in s or "UPDATE continuations " in s]
        assert len(writes) == 1 and "RETURNING" not in writes[0]  # all with the commit
        reads = [s for s in sent if s.startswith("SELECT") and "FOR UPDATE" in s]
        assert len(reads) == 1 and "JOIN continuations" in reads[0]
    with store.transaction() as tx:
        again = tx.update_run(run_id, expected_version=updated.version, cancel_requested=True)
    assert again == store.runs.get_run(run_id)


def test_a_locked_task_without_a_run_is_written_as_one_with(store: Store) -> None:
    with store.transaction() as tx:
        tx.put_continuation("cont_p", run_id=None, requests=[_req("req_p")], workflow_kind="p")
    with store.transaction() as tx:
        cont = tx.get_continuation("cont_p", for_update=True)
        replaced = tx.put_continuation(
            "cont_p", run_id=None, requests=[_req("req_p")], workflow_kind="p",
            expected_version=cont.version, status="resolved",
        )  # fmt: skip
    assert replaced == store.tasks.get_continuation("cont_p") and replaced.version == 2
    with pytest.raises(NotFound), store.transaction() as tx:
        tx.get_continuation("cont_missing", for_update=True)
