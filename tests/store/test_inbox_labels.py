"""Conformance: the inbox's assignee and kind filters walk label rows in the inbox's order
and find exactly the tasks with a *pending* request of that assignee or kind (a person and
their groups: any of them), page by page, after every change a task goes through; the
counts per assignee stop at a cap; an existing database is labelled by migration 0019. A
promotion (freeze override, rollback) is found under each of its approvers, labelled by
migration 0024 in an existing database."""

from __future__ import annotations

import itertools
from typing import Any

import sqlalchemy as sa

from kneo.clock import ManualClock
from kneo.store import Store, TaskQuery
from kneo.store import tables as t
from kneo.store.tasks.search import LABEL, label

from .helpers import new_run

ASSIGNEES = ["ann", "bob", "group:ops", None, "x" * 200]  # a name longer than a term
KINDS = ["approval", "input", "review"]


def _requests(i: int) -> list[dict[str, Any]]:
    """One to three requests per task, assignees and kinds mixed."""
    return [
        {
            "request_id": f"req_{i}_{n}",
            "kind": KINDS[(i + n) % 3],
            "assignee": ASSIGNEES[(i * 2 + n) % len(ASSIGNEES)],
        }
        for n in range(1 + i % 3)
    ]


#: A promotion's approvers (its context's): people, groups, a name longer than a term.
APPROVERS = [["group:ops", "ann"], ["user:cto@example.com"], ["y" * 200, "group:release"]]


def _fill(store: Store, clock: ManualClock, tasks: int = 24) -> None:
    for i in range(tasks):
        clock.advance(1)
        promotion = i % 8 == 7 or i % 8 == 3
        run_id = None if promotion else new_run(store)
        requests = _requests(i)
        if promotion:  # one approval, no assignee: its approvers are in the context
            requests = [{"request_id": f"req_{i}_0", "kind": "approval"}]
        with store.transaction() as tx:
            tx.put_continuation(
                f"cont_{i:03d}",
                run_id=run_id,
                requests=requests,
                context={"approvers": APPROVERS[i % 3]} if promotion else None,
                workflow_kind="promotion" if promotion else None,
            )


def _expected(store: Store, assignee: Any = None, kind: str | None = None) -> list[str]:
    """The filter's answer from the stored requests, as the filter is defined."""
    out = []
    for cont in store.tasks.list_continuations(TaskQuery(limit=100, count=False)).items:
        if kind is not None and (cont.workflow_kind == "promotion") != (kind == "promotion"):
            continue
        who = assignee if isinstance(assignee, tuple) else (assignee,)
        approvers = cont.context.get("approvers") or []
        for r in cont.requests:
            if (r.get("status") or "pending") != "pending":
                continue
            named = r.get("assignee") in who or (
                kind in (None, "promotion") and set(approvers) & set(who)
            )
            if (assignee is None or named) and (
                kind in (None, "promotion") or r.get("kind") == kind
            ):
                out.append(cont.continuation_id)
                break
    return out


def _paged(store: Store, limit: int, **filters: Any) -> tuple[list[str], int | None]:
    """Every page of a filter, by cursor; the first page's total."""
    ids: list[str] = []
    cursor, total = None, None
    while True:
        page = store.tasks.list_continuations(TaskQuery(limit=limit, cursor=cursor, **filters))
        total = page.total if total is None else total
        ids += [c.continuation_id for c in page.items]
        cursor = page.next_cursor
        if cursor is None:
            return ids, total


FILTERS: list[dict[str, Any]] = [
    {"assignee": "ann"},
    {"assignee": "group:ops"},
    {"assignee": "x" * 200},
    {"assignee": "nobody"},
    {"kind": "input"},
    {"kind": "promotion"},
    {"assignee": "bob", "kind": "review"},
    {"assignee": ("ann", "group:ops")},
    {"assignee": ("bob", "nobody", "x" * 200)},
    {"assignee": ("ann", "group:ops"), "kind": "approval"},
    # a promotion's approvers: alone, among a person's names, with the promotion kind
    {"assignee": "group:release"},
    {"assignee": "y" * 200},
    {"assignee": "user:cto@example.com", "kind": "promotion"},
    {"assignee": ("bob", "group:release", "user:cto@example.com")},
    {"assignee": "group:release", "kind": "approval"},  # a promotion is not an approval
]


def _check_filters(store: Store) -> None:
    for filters, limit, sort in itertools.product(FILTERS, (1, 3, 50), ("oldest", "newest")):
        expected = _expected(store, **filters)
        if sort == "newest":
            expected = expected[::-1]
        got, total = _paged(store, limit, sort=sort, **filters)
        assert got == expected, (filters, limit, sort)
        assert total == len(expected), (filters, limit, sort)


def test_filters_find_exactly_the_pending_requests(store: Store, clock: ManualClock) -> None:
    _fill(store, clock)
    assert _expected(store, assignee="ann") and _expected(store, assignee=("ann", "group:ops"))
    promotions = ["cont_003", "cont_007", "cont_011", "cont_015", "cont_019", "cont_023"]
    assert _expected(store, assignee="group:release") == ["cont_011", "cont_023"]
    assert _paged(store, 1, assignee="group:release")[0] == ["cont_011", "cont_023"]
    assert _expected(store, kind="promotion") == promotions
    _check_filters(store)
    # a promotion decided: it leaves its approvers' filters
    cont = store.tasks.get_continuation("cont_011")
    with store.transaction() as tx:
        tx.put_continuation(
            cont.continuation_id, run_id=None, requests=cont.requests, context=cont.context,
            status="resolved", workflow_kind="promotion", expected_version=cont.version,
        )  # fmt: skip
    assert _paged(store, 5, assignee="group:release")[0] == ["cont_023"]
    # a request decided: its labels go, the task's other requests keep theirs
    cont = store.tasks.get_continuation("cont_002")
    decided = [{**cont.requests[0], "status": "resolved"}, *cont.requests[1:]]
    with store.transaction() as tx:
        tx.put_continuation(
            cont.continuation_id, run_id=cont.run_id, requests=decided,
            expected_version=cont.version,
        )  # fmt: skip
    # escalated: a request changes hands
    cont = store.tasks.get_continuation("cont_004")
    moved = [{**cont.requests[0], "assignee": "group:leads"}, *cont.requests[1:]]
    with store.transaction() as tx:
        tx.put_continuation(
            cont.continuation_id, run_id=cont.run_id, requests=moved,
            expected_version=cont.version,
        )  # fmt: skip
    assert _paged(store, 5, assignee="group:leads")[0] == ["cont_004"]
    # resolved and deleted tasks leave every filter, and their labels with them
    cont = store.tasks.get_continuation("cont_005")
    with store.transaction() as tx:
        tx.put_continuation(
            cont.continuation_id, run_id=cont.run_id, requests=cont.requests,
            status="resolved", expected_version=cont.version,
        )  # fmt: skip
        tx.delete_continuation("cont_006")
    _check_filters(store)
    k = t.continuation_terms.c
    with store.engine.connect() as conn:
        labelled = set(
            conn.execute(sa.select(k.continuation_id).where(k.term.startswith(LABEL))).scalars()
        )
    assert "cont_005" not in labelled and "cont_006" not in labelled


def test_a_long_name_is_labelled_by_its_digest() -> None:
    assert label("a", "ann") == "=a:ann"
    long = label("a", "x" * 200)
    assert len(long) == 40 and long.startswith("=a#") and long != label("a", "y" * 200)


def test_counts_per_assignee_stop_at_the_cap(store: Store, clock: ManualClock) -> None:
    _fill(store, clock)
    exact = store.tasks.pending_counts_by_assignee()
    assert store.tasks.pending_counts_by_assignee(1000) == exact
    capped = store.tasks.pending_counts_by_assignee(2)
    assert capped == {a: min(n, 3) for a, n in exact.items()}
    assert any(n > 3 for n in exact.values())


def test_the_migration_labels_pending_tasks(store: Store, clock: ManualClock) -> None:
    """0019 and 0024 write the labels a pending task gets when it is written (0024: a
    promotion's approvers); their downgrades drop them (and only them)."""
    from alembic import command

    from kneo.store.migrate import HEAD_REVISION, _alembic_config, upgrade

    _fill(store, clock)
    k = t.continuation_terms.c

    def terms() -> set[tuple[str, str]]:
        with store.engine.connect() as conn:
            return {
                (r.term, r.continuation_id)
                for r in conn.execute(sa.select(k.term, k.continuation_id))
            }

    def downgrade(revision: str) -> None:
        with (
            store.dialect.connect_write(store.engine) as conn,
            conn.begin(),
            store.dialect.migration_lock(conn),
        ):
            command.downgrade(_alembic_config(conn), revision)

    written = terms()
    assert any(term.startswith(LABEL) for term, _ in written)
    approver_labels = {
        (label("a", a), f"cont_{i:03d}")
        for i in range(24)
        if i % 8 in (3, 7)
        for a in APPROVERS[i % 3]
    }
    assert approver_labels <= written
    downgrade("0023")  # 0024's labels go, and only they
    assert terms() == written - approver_labels
    assert not sa.inspect(store.engine).has_table("seen_callbacks")
    downgrade("0018")
    assert terms() == {(term, cid) for term, cid in written if not term.startswith(LABEL)}
    assert upgrade(store.engine, store.dialect) == HEAD_REVISION
    assert terms() == written
    _check_filters(store)
