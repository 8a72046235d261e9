"""A listing's ``total`` is exact up to ``KNEO_SERV_MAX_LIST_COUNT`` (1,000 by default) rows
past the page's end and capped beyond it, under every inbox filter and after a cursor: the
count walks at most that many index rows more than the page does however many tasks match,
so a page costs the same at 100,000 pending, and a client paging by offset sees more rows
whenever there are."""

from __future__ import annotations

from typing import Any

import pytest

from kneo.clock import ManualClock
from kneo.settings import Settings
from kneo.store import Store

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
        first = store.tasks.list_continuations(limit=2, **filters)
        after = store.tasks.list_continuations(limit=2, cursor=first.next_cursor, **filters)
        assert (after.total, after.total_capped) == (first.total, first.total_capped), filters
        out.append((first.total, first.total_capped))
    return out


@pytest.mark.timeout(120)
def test_total_is_exact_up_to_the_default_cap_then_capped(store: Store, clock: ManualClock) -> None:
    cap = Settings().limits.max_list_count
    assert cap == 1_000
    # counted up to the cap past the page's end (offset 0, limit 2): cap + 2 rows
    _put(store, clock, 0, cap + 2)
    assert _totals(store) == [(cap + 2, False)] * len(FILTERS)
    _put(store, clock, cap + 2, 1)
    assert _totals(store) == [(cap + 2, True)] * len(FILTERS)
    # a filter matching fewer than the cap is exact
    assert store.tasks.list_continuations(limit=2, assignee="bob").total == 0
