"""A listing's ``total`` is exact by default (``KNEO_SERV_MAX_LIST_COUNT`` unset, ``0``),
under every inbox filter and after a cursor, past the 1,000 rows where it used to stop
(kneo-dash showed "Total runs 1001" on a 13,039-run store). An operator who sets the cap
gets the old bounded count: exact up to that many rows past the page's end, capped beyond it
(``total_capped``), so a client paging by offset still sees more rows whenever there are."""

from __future__ import annotations

from typing import Any

import pytest

from kneo.clock import ManualClock
from kneo.settings import Settings
from kneo.store import RunQuery, Store, TaskQuery

FILTERS: list[dict[str, Any]] = [
    {},
    {"assignee": "ann"},
    {"assignee": ("ann", "group:ops")},
    {"kind": "approval"},
    {"environment": "prod"},
    {"workflow_name": "triage"},
]


def _put(store: Store, clock: ManualClock, first: int, count: int) -> None:
    with store.transaction() as tx:
        for i in range(first, first + count):
            clock.advance(1)
            tx.put_continuation(
                f"cont_{i:05d}",
                run_id=None,
                requests=[{"request_id": f"req_{i}", "kind": "approval", "assignee": "ann"}],
                workflow_name="triage",
                environment="prod",
            )


def _totals(store: Store) -> list[tuple[int | None, bool]]:
    out = []
    for filters in FILTERS:
        first = store.tasks.list_continuations(TaskQuery(limit=2, **filters))
        after = store.tasks.list_continuations(
            TaskQuery(limit=2, cursor=first.next_cursor, **filters)
        )
        assert (after.total, after.total_capped) == (first.total, first.total_capped), filters
        out.append((first.total, first.total_capped))
    return out


@pytest.mark.timeout(120)
def test_total_is_exact_by_default(store: Store, clock: ManualClock) -> None:
    assert Settings().limits.max_list_count == 0
    _put(store, clock, 0, 1_003)
    assert _totals(store) == [(1_003, False)] * len(FILTERS)
    # a filter matching nothing is exact too
    assert store.tasks.list_continuations(TaskQuery(limit=2, assignee="bob")).total == 0
    # so is a run listing and the audit (every list counts the same way)
    assert store.runs.list_runs(RunQuery(limit=2)).total == 0


@pytest.mark.timeout(120)
def test_a_set_cap_counts_up_to_it_past_the_page_then_caps(
    make_store: Any, clock: ManualClock
) -> None:
    cap = 20
    store = make_store(Settings.from_env({"KNEO_SERV_MAX_LIST_COUNT": str(cap)}))
    # counted up to the cap past the page's end (offset 0, limit 2): cap + 2 rows
    _put(store, clock, 0, cap + 2)
    assert _totals(store) == [(cap + 2, False)] * len(FILTERS)
    _put(store, clock, cap + 2, 1)
    assert _totals(store) == [(cap + 2, True)] * len(FILTERS)
