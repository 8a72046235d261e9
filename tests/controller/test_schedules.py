"""Schedules declared in signed bundles: each tick starts exactly one run across
schedulers, catch-up and overlap as documented, holds by a freeze, a suspension and a pause.

The real controller promotes the bundles from a real Git repository; two schedulers (two
platforms on one store, as two replicas) pass over the same schedules, on SQLite and on
PostgreSQL (the ``store`` fixture).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from gitops_fixtures import Keys, Repo, make_controller

from kneo.clock import ManualClock
from kneo.controller import operations
from kneo.platform import create_platform
from kneo.platform.schedules import Scheduler
from kneo.settings import Settings
from kneo.spec.project import ProjectContext
from kneo.spec.schedules import ScheduleSpec, due_ticks


def scheduled(**schedule: Any) -> dict[str, Any]:
    """A signed workflow that waits for a person, with one schedule named ``tick``."""
    return {
        "version": "v1",
        "agent": {
            "name": "helper",
            "model": {"provider": "dummy", "name": "dummy", "script": [{"text": "done"}]},
        },
        "workflow": {
            "type": "sequential",
            "steps": [
                {"id": "draft", "kind": "agent", "ref": "helper"},
                {"id": "approve", "kind": "human", "ref": "reviewer"},
            ],
        },
        "components": {"humans": {"reviewer": {"prompt": "ok?"}}},
        "schedules": [{"name": "tick", "input": "nightly", **schedule}],
    }


def _platform(store: Any, clock: ManualClock, tmp_path: Path) -> Any:
    settings = Settings.from_env({})
    (tmp_path / ".kneo").mkdir(parents=True, exist_ok=True)
    (tmp_path / ".kneo" / "config.yaml").write_text(
        "version: v1\nenvironments: {dev: {}, live: {}}\n"
    )
    project = ProjectContext.discover(cwd=tmp_path, settings=settings)
    return create_platform(settings=settings, project=project, store=store, clock=clock)


def _promote(
    store: Any,
    repo: Repo,
    keys: Keys,
    clock: ManualClock,
    tmp_path: Path,
    *,
    env: str = "dev",
    **schedule: Any,
) -> Any:
    repo.write(f"bundles/nightly/{env}.json", keys.bundle("nightly", env, scheduled(**schedule)))
    repo.commit("nightly")
    ctl = make_controller(store, repo, keys, clock, tmp_path)
    assert ctl.reconcile_once().ok
    return ctl


def _ticks(store: Any, env: str = "dev") -> list[Any]:
    return store.schedules.ticks(("nightly", env, "tick"), limit=1000)


def _scheduled_runs(store: Any, tick_rows: list[Any]) -> list[Any]:
    return [store.runs.get_run(t.run_id) for t in tick_rows if t.run_id]


def test_each_tick_starts_one_run_across_two_schedulers_and_a_restart(
    store: Any, repo: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    _promote(store, repo, keys, clock, tmp_path, every_seconds=1, overlap="allow",
             catch_up="all", catch_up_limit=3)  # fmt: skip
    platform = _platform(store, clock, tmp_path)
    first, second = Scheduler(platform), Scheduler(_platform(store, clock, tmp_path / "b"))
    # first sight: counts from now (the tick at this very second), never from the past
    started = first.tick_once()["started"] + second.tick_once()["started"]
    for _ in range(60):
        clock.advance(1)
        started += first.tick_once()["started"] + second.tick_once()["started"]
    rows = _ticks(store)
    assert started == 60 and len(rows) == 60
    assert len({r.tick_at for r in rows}) == 60 and {r.status for r in rows} == {"started"}
    runs = _scheduled_runs(store, rows)
    assert len({r.run_id for r in runs}) == 60
    assert {r.bundle_name for r in runs} == {"nightly"}
    assert {r.metadata["schedule"]["name"] for r in runs} == {"tick"}
    assert all(r.input_text == "nightly" and r.status == "queued" for r in runs)

    # the first scheduler dies; ten ticks pass with none running; a fresh one takes over:
    # catch_up all runs the latest catch_up_limit missed ticks, the others are dropped
    clock.advance(60)
    restarted = Scheduler(_platform(store, clock, tmp_path / "c"), grace=0.5)
    counts = restarted.tick_once()
    assert (counts["started"], counts["dropped"]) == (1 + 3, 60 - 1 - 3)
    assert second.tick_once()["started"] == 0  # the same instant: nothing twice
    assert len(_ticks(store)) == 64


@pytest.mark.parametrize(("policy", "late_runs"), [("skip", 0), ("one", 1), ("all", 5)])
def test_catch_up_policy_after_an_outage(policy: str, late_runs: int) -> None:
    from datetime import UTC, datetime

    spec = ScheduleSpec(name="s", every_seconds=60, catch_up=policy, catch_up_limit=5)
    last = datetime(2026, 3, 1, tzinfo=UTC)
    now = last + timedelta(minutes=30, seconds=10)  # 30 ticks due, none on time
    kept, dropped, through = due_ticks(spec, last, now, grace=5)
    assert len(kept) == late_runs and dropped == 30 - late_runs
    assert through == last + timedelta(minutes=30)
    kept, dropped, _ = due_ticks(spec, last + timedelta(minutes=29), now, grace=30)
    assert (len(kept), dropped) == (1, 0)  # on time: always runs


def test_overlap_skip_and_queue(
    store: Any, repo: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    _promote(store, repo, keys, clock, tmp_path, every_seconds=10, overlap="queue")
    platform = _platform(store, clock, tmp_path)
    scheduler = Scheduler(platform)
    scheduler.tick_once()
    clock.advance(10)
    assert scheduler.tick_once()["started"] == 1
    clock.advance(10)
    assert scheduler.tick_once()["waiting"] == 1  # the first run is still queued
    clock.advance(10)
    assert scheduler.tick_once()["waiting"] == 1
    live = [t for t in _ticks(store) if t.status == "started"]
    platform.runs.cancel(live[0].run_id, actor="test")
    counts = scheduler.tick_once()
    assert counts["started"] == 1  # the oldest waiting tick, once the first run ended
    statuses = sorted(t.status for t in _ticks(store))
    assert statuses == ["started", "started", "waiting"]


def test_overlap_skip_drops_ticks_while_a_run_is_live(
    store: Any, repo: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    _promote(store, repo, keys, clock, tmp_path, every_seconds=10)  # overlap: skip
    scheduler = Scheduler(_platform(store, clock, tmp_path))
    scheduler.tick_once()
    for _ in range(3):
        clock.advance(10)
        scheduler.tick_once()
    assert sorted(t.status for t in _ticks(store)) == ["skipped", "skipped", "started"]


def test_a_freeze_holds_ticks_and_catch_up_decides_them_after(
    store: Any, repo: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    repo.write(
        "environments/live.yaml",
        "version: v1\npromotion:\n  freeze:\n    - {reason: holidays, "
        "from: 2026-03-01T01:00:00Z, until: 2026-03-01T01:05:00Z}\n",
    )
    _promote(store, repo, keys, clock, tmp_path, env="live", every_seconds=60, catch_up="one")
    scheduler = Scheduler(_platform(store, clock, tmp_path))
    scheduler.tick_once()
    clock.advance(3600)  # 01:00, inside the freeze
    for _ in range(4):
        assert scheduler.tick_once()["held"] == 1
        clock.advance(60)
    ticks = _ticks(store, "live")
    assert ticks == []
    clock.advance(90)  # 01:05:30: the freeze is over; catch_up one runs the latest tick
    counts = scheduler.tick_once()
    assert counts["started"] == 1 and counts["dropped"] >= 3
    assert [t.status for t in _ticks(store, "live")] == ["started"]


def test_suspend_and_pause_hold_ticks(
    store: Any, repo: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    _promote(store, repo, keys, clock, tmp_path, every_seconds=10, overlap="allow",
             catch_up="skip")  # fmt: skip
    scheduler = Scheduler(_platform(store, clock, tmp_path), grace=5)
    scheduler.tick_once()
    operations.suspend(store, "nightly", "dev", actor="ops", reason="incident")
    clock.advance(10)
    assert scheduler.tick_once()["held"] == 1
    operations.resume(store, "nightly", "dev", actor="ops")
    clock.advance(60)  # the held ticks are late: catch_up skip drops them
    counts = scheduler.tick_once()
    assert counts["started"] == 1 and counts["dropped"] == 6
    store.schedules.set_paused(("nightly", "dev", "tick"), True, "ops")
    clock.advance(30)
    assert scheduler.tick_once()["started"] == 0
    store.schedules.set_paused(("nightly", "dev", "tick"), False, "ops")
    clock.advance(10)
    counts = scheduler.tick_once()
    assert counts == {**counts, "started": 1, "dropped": 0}  # a resume counts from then


def test_a_schedule_ends_with_its_revision(
    store: Any, repo: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    ctl = _promote(store, repo, keys, clock, tmp_path, every_seconds=10)
    scheduler = Scheduler(_platform(store, clock, tmp_path))
    assert list(scheduler.declared()) == [("nightly", "dev", "tick")]
    body = scheduled(every_seconds=10)
    body.pop("schedules")
    repo.write("bundles/nightly/dev.json", keys.bundle("nightly", "dev", body))
    repo.commit("no schedule")
    assert ctl.reconcile_once().ok
    assert scheduler.declared() == {}


def test_a_tick_is_claimed_once_and_its_outcome_set_once(store: Any) -> None:
    """The primitive every replica relies on, on each database: the second claim of a tick
    and the second compare-and-set of its outcome both lose (RETURNING, not a row count)."""
    key = ("nightly", "dev", "tick")
    tick = store.clock.now()
    assert [store.schedules.claim_tick(key, tick) for _ in range(3)] == [True, False, False]
    assert store.schedules.record_tick(key, tick, "started", run_id="r1", expected="claimed")
    assert not store.schedules.record_tick(key, tick, "lost", expected="claimed")
    assert [(t.status, t.run_id) for t in store.schedules.ticks(key)] == [("started", "r1")]
    store.schedules.advance(key, tick + timedelta(seconds=5))
    store.schedules.advance(key, tick)  # never back
    assert store.schedules.states()[key].last_tick == tick + timedelta(seconds=5)
