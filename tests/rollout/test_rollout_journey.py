"""Rollouts end to end: the real controller promotes a revision under a ``rollout:`` policy,
real bundle runs split between canary and stable, scripted reviewers decide, and the
controller's passes abort a canary reviewers reject or walk a good one to 100 %. SQLite and
PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from kneo.controller.rollout_pass import decide
from kneo.errors import Forbidden
from kneo.store import AuditQuery, tables
from tests.rollout.world import DEV, FROZEN, MIN_RUNS, World


def test_a_canary_reviewers_reject_is_aborted_and_new_runs_return_to_stable(
    store: Any, tmp_path: Path
) -> None:
    w = World(store, tmp_path)
    w.release("good draft")
    assert w.rollout() is None  # a first promotion takes every run at once
    w.release("bad draft")
    ro = w.rollout()
    assert (ro.stable_revision, ro.canary_revision, ro.weight, ro.status) == (
        1,
        2,
        50,
        "progressing",
    )
    assert store.registry.get_active("helper", "dev").revision == 2

    # a session keeps its side; one on the canary waits for its reviewer through the abort
    sides = {}
    for i in range(40):
        run = w.start(f"session-{i}")
        sides[f"session-{i}"] = store.runs.get_run(run.run_id).bundle_revision
        if sides[f"session-{i}"] == 2 and "held" not in sides:
            sides["held"] = run
        else:
            w.review(run, reject_revision=2)
    for name in ("session-3", "session-7", "session-11"):
        again = w.start(name)
        assert store.runs.get_run(again.run_id).bundle_revision == sides[name]
        w.review(again, reject_revision=2)
    held = sides["held"]
    assert store.runs.get_run(held.run_id).metadata["rollout"]["track"] == "canary"

    revisions = w.drive(4 * MIN_RUNS, reject_revision=2)
    ro = w.rollout()
    assert ro.status == "aborted", ro
    assert "rejection" in (ro.reason or "")
    figures = ro.figures["sides"]
    assert figures["canary"]["rejection_rate"] == 1.0 and figures["stable"]["rejection_rate"] == 0
    # the reviewers' decisions are counted by the kind of request they answered
    assert list(figures["canary"]["by_kind"]) == ["approval"]
    assert figures["canary"]["by_kind"]["approval"]["decided"] == figures["canary"]["decided"]
    assert figures["canary"]["by_kind"]["approval"]["rejection_rate"] == 1.0
    assert figures["canary"]["finished"] >= MIN_RUNS and figures["stable"]["finished"] >= MIN_RUNS
    assert len(revisions) <= 4 * MIN_RUNS  # decided within the stated runs
    [event] = store.audit.list_audit(AuditQuery(event_type="rollout.aborted", limit=10)).items
    assert event.payload["canary_revision"] == 2 and event.payload["verdict"]["outcome"] == "fail"
    with store.engine.connect() as conn:
        kinds = conn.execute(sa.select(tables.notification_events.c.event_type)).scalars().all()
    assert "rollout.aborted" in kinds and "rollout.started" in kinds

    # every new run goes back to the stable revision at once, sessions included
    for i in range(10):
        run = w.start(f"session-{i}")
        assert store.runs.get_run(run.run_id).bundle_revision == 1
        w.review(run, reject_revision=2)
    # the run paused on the canary resumes on the canary, with its own code and spec
    w.review(held, reject_revision=None)
    done = store.runs.get_run(held.run_id)
    assert done.bundle_revision == 2 and done.status == "succeeded"
    assert "bad draft" in (done.output_text or "") or done.metadata["bundle"]["revision"] == 2
    # nothing moves it again without a new commit
    assert w.ctl.reconcile_once().ok and w.rollout().status == "aborted"


def test_a_good_canary_walks_to_100_percent(store: Any, tmp_path: Path) -> None:
    w = World(store, tmp_path)
    w.release("good draft")
    w.release("better draft")
    assert w.ctl.reconcile_once().ok and w.rollout().status == "progressing"
    # too few runs never decide
    w.drive(MIN_RUNS // 2, reject_revision=None)
    assert w.rollout().status == "progressing" and w.rollout().weight == 50
    assert "too few runs" in (w.rollout().reason or "")
    w.drive(20 * MIN_RUNS, reject_revision=None)
    ro = w.rollout()
    assert (ro.status, ro.weight) == ("promoted", 100), ro
    assert [
        e.event_type
        for e in store.audit.list_audit(AuditQuery(event_type="rollout.promoted")).items
    ]
    for _ in range(5):
        run = w.start()
        assert store.runs.get_run(run.run_id).bundle_revision == 2
        assert "rollout" not in store.runs.get_run(run.run_id).metadata


def test_a_pin_and_a_freeze_stop_progress(store: Any, tmp_path: Path) -> None:
    w = World(store, tmp_path)
    w.release("good draft")
    w.release("better draft")
    with store.transaction() as tx:
        tx.set_pin("helper", "dev", 2, reason="hold", pinned_by="alice")
    w.drive(4 * MIN_RUNS, reject_revision=None)
    ro = w.rollout()
    assert (ro.status, ro.weight) == ("progressing", 50)
    assert ro.reason == "pinned to revision 2"
    with store.transaction() as tx:
        tx.set_pin("helper", "dev", None)
    assert w.ctl.reconcile_once().ok and w.rollout().status == "promoted"


def test_a_freeze_stops_progress(store: Any, tmp_path: Path) -> None:
    frozen = DEV.replace(
        "promotion: {approvers: [alice]}\n", "promotion:\n  approvers: [alice]\n" + FROZEN
    )
    w = World(store, tmp_path, frozen)
    w.release("good draft")
    w.release("better draft")
    assert w.rollout().status == "progressing"
    w.clock.advance(10)  # the window begins
    w.drive(4 * MIN_RUNS, reject_revision=None)
    ro = w.rollout()
    assert (ro.status, ro.weight) == ("progressing", 50)
    assert (ro.reason or "").startswith("frozen: holidays")


def test_by_hand_under_the_approvers(store: Any, tmp_path: Path) -> None:
    w = World(store, tmp_path)
    w.release("good draft")
    w.release("better draft")
    ro = w.rollout()
    now = store.clock.now()
    with pytest.raises(Forbidden):
        decide(store, ro.rollout_id, "abort", actor="mallory", now=now)
    aborted = decide(store, ro.rollout_id, "abort", actor="alice", now=now, reason="looks off")
    assert aborted["status"] == "aborted" and aborted["reason"] == "looks off"
    run = w.start()
    assert store.runs.get_run(run.run_id).bundle_revision == 1
    retried = decide(store, ro.rollout_id, "retry", actor="alice", now=now)
    assert (retried["status"], retried["weight"], retried["step"]) == ("progressing", 50, 1)
    promoted = decide(store, ro.rollout_id, "promote", actor="alice", now=now, full=True)
    assert (promoted["status"], promoted["weight"]) == ("promoted", 100)
    kinds = [e.event_type for e in store.audit.list_audit(AuditQuery(limit=100)).items]
    assert {"rollout.started", "rollout.aborted", "rollout.retried", "rollout.promoted"} <= set(
        kinds
    )
