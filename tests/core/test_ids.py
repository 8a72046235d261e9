"""Run ids keep their documented shape and sort by creation time to the microsecond."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from kneo.ids import new_run_id

SHAPE = re.compile(r"run_\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}_[0-9a-f]{12}")


def test_run_ids_sort_by_creation_time_within_a_second() -> None:
    start = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC)
    times = [start + timedelta(microseconds=us) for us in (0, 1, 15, 4096, 500_000, 999_999)]
    times.append(start + timedelta(seconds=1))
    ids = [new_run_id(t) for t in times]
    assert all(SHAPE.fullmatch(i) for i in ids), ids
    assert ids == sorted(ids)


def test_run_ids_created_in_the_same_microsecond_differ() -> None:
    """28 random bits tell ids of one microsecond apart. 2,000 of them share a pair with
    probability ~0.75 % (birthday bound), so the test allows a few such pairs; ten would take
    odds below 1e-20, while a missing or weak random part fails it at once."""
    now = datetime(2026, 11, 21, 12, 0, 0, 123456, tzinfo=UTC)
    ids = {new_run_id(now) for _ in range(2000)}
    assert len(ids) > 1990
