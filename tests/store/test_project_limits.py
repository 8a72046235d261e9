"""What a project's limits count, in the store (``store.limits``, ``project_usage``), on SQLite
and PostgreSQL: runs executing and queued counted up to a cap, per project; every project's
executing runs in one read; daily usage added up by concurrent writers and a raised limit
that only goes up; the start transaction's slot count."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from kneo.clock import ManualClock
from kneo.errors import InvalidRequest
from kneo.store import Store


def _runs(store: Store, status: str, count: int, *, lease: bool = False) -> list[str]:
    with store.transaction() as tx:
        return [
            tx.create_run(
                target="workflow",
                input_text="x",
                status=status,
                lease=("w1", 60) if lease else None,
            ).run_id
            for _ in range(count)
        ]


def test_counts_stop_at_the_cap_and_stay_in_the_project(store: Store, clock: ManualClock) -> None:
    store.projects.create_project("team-a")
    team = store.for_project("team-a")
    _runs(team, "queued", 3)
    _runs(team, "running", 2, lease=True)
    _runs(team, "running", 1)  # handed to the workers: no lease, not executing
    _runs(store, "queued", 4)
    counts = team.limits
    assert counts.count_runs("queued", 2) == 2 and counts.count_runs("queued", 10) == 3
    assert counts.count_runs("running", 10) == 3
    assert counts.count_runs("running", 10, executing_only=True) == 2
    assert store.limits.count_runs("queued", 10) == 4
    assert store.limits.executing_runs([store.project_id, team.project_id]) == {team.project_id: 2}
    assert store.limits.executing_runs([]) == {}
    clock.advance(61)  # the leases lapse: their process is gone
    assert counts.count_runs("running", 10, executing_only=True) == 0
    with pytest.raises(InvalidRequest):
        counts.count_runs("queued", 0)


def test_daily_usage_adds_up_and_a_raise_only_goes_up(store: Store) -> None:
    store.projects.create_project("team-a")
    team = store.for_project("team-a")
    assert team.limits.day_usage("2026-01-01").model_calls == 0
    with ThreadPoolExecutor(4) as pool:  # every process's calls add up
        list(
            pool.map(
                lambda _: team.limits.add_usage("2026-01-01", model_calls=1, tokens=7), range(20)
            )
        )
    day = team.limits.day_usage("2026-01-01")
    assert (day.model_calls, day.tokens, day.used("tokens")) == (20, 140, 140)
    assert store.limits.day_usage("2026-01-01").model_calls == 0  # default's is its own
    assert team.limits.day_usage("2026-01-02").model_calls == 0
    assert team.limits.raise_day_limit("2026-01-01", "model_calls", 40).raised("model_calls") == 40
    assert team.limits.raise_day_limit("2026-01-01", "model_calls", 30).model_calls_limit == 40
    raised = team.limits.raise_day_limit("2026-01-03", "tokens", 9)  # a day with no usage yet
    assert (raised.tokens_limit, raised.tokens, raised.raised("model_calls")) == (9, 0, None)
    with pytest.raises(InvalidRequest):
        team.limits.raise_day_limit("2026-01-01", "tool_calls", 5)


def test_the_start_transaction_counts_the_projects_executing_runs(store: Store) -> None:
    store.projects.create_project("team-a")
    team = store.for_project("team-a")
    _runs(store, "running", 2, lease=True)  # default's: not team-a's
    with team.transaction() as tx:
        assert tx.run_slot_free(1)
    _runs(team, "running", 1, lease=True)
    with team.transaction() as tx:
        assert not tx.run_slot_free(1)
        assert tx.run_slot_free(2)
