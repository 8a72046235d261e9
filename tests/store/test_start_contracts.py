"""The store's answers for runs that start by themselves (``store.schedules``, ``store.triggers``),
member by member, on SQLite and PostgreSQL: a schedule's tick claimed once, its outcome
set by compare-and-set, its state advanced only forward and paused by a person; a trigger's
event claimed once, a later claim reading its outcome; each project's rows its own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kneo.clock import ManualClock
from kneo.store import Store

KEY = ("nightly", "dev", "tick")
T0 = datetime(2026, 3, 1, 3, tzinfo=UTC)


def test_schedule_states_claim_record_and_read(store: Store, clock: ManualClock) -> None:
    schedules = store.schedules
    with store.transaction() as tx:
        tx.add_revision("nightly", "dev", digest="sha256:" + "1" * 64, spec={"v": 1})
    with store.transaction() as tx:
        tx.set_revision_status("nightly", "dev", 1, "active")
    with store.transaction() as tx:  # a later inactive revision is not a declared one
        tx.add_revision("nightly", "dev", digest="sha256:" + "2" * 64, spec={"v": 2})
    heads = store.registry.list_revisions(status="active", heads=True)
    assert [(h.bundle_name, h.environment, h.revision) for h in heads] == [("nightly", "dev", 1)]
    assert schedules.states() == {}

    schedules.advance(KEY, T0)
    schedules.advance(KEY, T0 - timedelta(hours=1))  # never back
    assert schedules.states()[KEY].last_tick == T0

    assert schedules.claim_tick(KEY, T0) is True
    assert schedules.claim_tick(KEY, T0) is False  # another replica's claim finds it taken
    clock.advance(120)
    (stale,) = schedules.ticks(status="claimed", before=clock.now())  # its claimer died
    assert (stale.key, stale.tick_at, stale.status) == (KEY, T0, "claimed")
    assert schedules.ticks(status="claimed", before=clock.now() - timedelta(seconds=121)) == []

    with store.transaction() as tx:
        tx.create_run(run_id="run_s1", target="workflow", input_text="x", status="queued")
    assert schedules.record_tick(KEY, T0, "started", run_id="run_s1", expected="claimed")
    assert not schedules.record_tick(KEY, T0, "failed", expected="claimed")  # lost the race
    assert schedules.live_run(KEY) == "run_s1"
    assert schedules.ticks(status="claimed", before=clock.now()) == []

    later = T0 + timedelta(days=1)
    latest = later + timedelta(days=1)
    assert schedules.claim_tick(KEY, latest, status="waiting")
    assert schedules.claim_tick(KEY, later, status="waiting")
    assert schedules.waiting() == {KEY: later}  # the oldest waiting tick of each schedule
    waiting = schedules.ticks(status="waiting", limit=None)  # every schedule's, newest first
    assert [(k.key, k.tick_at) for k in waiting] == [(KEY, latest), (KEY, later)]
    assert schedules.record_tick(KEY, later, "skipped", detail="x" * 900)
    assert schedules.waiting() == {KEY: latest}
    assert schedules.record_tick(KEY, latest, "skipped")
    assert schedules.waiting() == {} and schedules.ticks(status="waiting") == []
    ticks = schedules.ticks(KEY)
    assert [(k.tick_at, k.status, k.run_id) for k in ticks] == [
        (latest, "skipped", None),
        (later, "skipped", None),
        (T0, "started", "run_s1"),
    ]
    assert len(ticks[1].detail or "") == 500 and schedules.ticks(KEY, limit=1) == ticks[:1]

    schedules.set_paused(KEY, True, "alice")
    state = schedules.states()[KEY]
    assert (state.paused, state.paused_by, state.last_tick) == (True, "alice", T0)
    schedules.set_paused(KEY, False, "bob")
    state = schedules.states()[KEY]
    assert (state.paused, state.paused_by, state.last_tick) == (False, None, clock.now())

    store.projects.create_project("team-b")
    team_b = store.for_project("team-b")
    other = team_b.schedules  # another project's view sees nothing
    assert other.states() == {} and other.ticks(KEY) == [] and other.ticks() == []
    assert team_b.registry.list_revisions(status="active", heads=True) == []
    assert other.claim_tick(KEY, T0) is True


def test_trigger_events_claim_once_and_read_back(store: Store) -> None:
    triggers = store.triggers
    key = ("intake", "dev", "tickets")
    assert triggers.claim_event(key, "e1") is None  # this delivery took it
    # a retried delivery finds what the first recorded so far
    assert triggers.claim_event(key, "e1") == {"status": "claimed", "run_id": None,
                                               "detail": None}  # fmt: skip
    triggers.record_event(key, "e1", "started", run_id="run_t1", detail="ok")
    assert triggers.claim_event(key, "e1") == {"status": "started", "run_id": "run_t1",
                                               "detail": "ok"}  # fmt: skip
    store.projects.create_project("team-b")
    other = store.for_project("team-b").triggers
    assert other.claim_event(key, "e1") is None  # another project's event of that id
