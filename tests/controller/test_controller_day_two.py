"""Day two with real Git repositories and controllers: rollback, pin, block, downgrades."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from gitops_fixtures import Keys, Repo, make_controller, spec

from kneo.bundle.keys import Keyring
from kneo.clock import ManualClock
from kneo.controller import operations
from kneo.controller.controller import Controller
from kneo.controller.promotion import record_promotion_decision, task_id
from kneo.controller.runtime import resolve_bundle_for_run
from kneo.errors import Conflict, Forbidden, InvalidRequest
from kneo.store import AuditQuery, TaskQuery


def promoted(store: Any, name: str, env: str) -> tuple[str, str, str]:
    c = {c.type: c for c in store.registry.list_conditions(name, env)}["Promoted"]
    return c.status, c.reason, c.message


def audit(store: Any, event_type: str) -> list[Any]:
    return list(store.audit.list_audit(AuditQuery(event_type=event_type, limit=100)).items)


def release(repo: Repo, keys: Keys, env: str, prompt: str) -> str:
    repo.write(f"bundles/helper/{env}.json", keys.bundle("helper", env, spec(prompt)))
    return repo.commit(prompt)


def digest_of(store: Any, env: str, revision: int) -> str:
    return str(store.registry.get_revision("helper", env, revision).digest)


def test_bad_release_rolls_back_in_under_two_seconds_and_stays_pinned(
    store: Any, repo: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    ctl = make_controller(store, repo, keys, clock, tmp_path)
    release(repo, keys, "dev", "good")
    assert ctl.reconcile_once().ok
    release(repo, keys, "dev", "bad")
    assert ctl.reconcile_once().ok
    good, bad = digest_of(store, "dev", 1), digest_of(store, "dev", 2)
    assert store.registry.get_active("helper", "dev").digest == bad

    started = time.perf_counter()
    done = operations.rollback(store, "helper", "dev", to=1, actor="alice", reason="5xx spike")
    spec_now, revision, digest, _ = resolve_bundle_for_run(store, "helper", "dev")
    elapsed = time.perf_counter() - started
    assert elapsed < 2.0
    assert (done["status"], done["revision"], done["rollback_of"]) == ("rolled_back", 3, 1)
    assert (revision, digest, spec_now) == (3, good, spec("good"))
    assert done["pin"]["revision"] == 3 and done["pin"]["pinned_by"] == "alice"
    pinned = store.maintenance.gauges().pinned
    assert pinned == {
        ("default", "dev"): 1
    }  # kneo_bundles_pinned{project="default",environment="dev"}
    [event] = audit(store, "bundle.rolled_back")
    assert event.actor == "alice"
    assert event.payload["previous_digest"] == bad and event.payload["rollback_of"] == 1

    for _ in range(2):  # Git still asks for the bad digest: the pin holds, pass after pass
        clock.advance(30)
        result = ctl.reconcile_once(full=True)
        assert result.ok and result.written == []
        assert store.registry.get_active("helper", "dev").revision == 3
    status, reason, message = promoted(store, "helper", "dev")
    assert (status, reason) == ("False", "Pinned")
    assert "pinned to revision 3" in message and "by alice" in message and bad[:19] in message

    # someone activates the bad revision by hand: the controller puts the pin back
    with store.transaction() as tx:
        tx.set_revision_status("helper", "dev", 2, "active")
    assert ctl.reconcile_once().ok
    assert store.registry.get_active("helper", "dev").revision == 3

    operations.unpin(store, "helper", "dev", actor="alice")
    assert [e.actor for e in audit(store, "bundle.unpinned")] == ["alice"]
    assert ctl.reconcile_once().ok
    assert store.registry.get_active("helper", "dev").digest == bad  # Git's newer digest again


def test_rollback_refuses_what_no_longer_holds(
    store: Any, repo: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    ctl = make_controller(store, repo, keys, clock, tmp_path)
    release(repo, keys, "dev", "one")
    assert ctl.reconcile_once().ok
    release(repo, keys, "dev", "two")
    assert ctl.reconcile_once().ok
    with pytest.raises(Conflict) as err:
        operations.rollback(store, "helper", "dev", to=2, actor="alice")
    assert err.value.code == "already_active"
    operations.block(store, digest_of(store, "dev", 1), actor="sec", reason="CVE-1")
    with pytest.raises(Conflict) as err:
        operations.rollback(store, "helper", "dev", to=1, actor="alice")
    assert err.value.code == "digest_blocked" and "CVE-1" in err.value.message
    operations.unblock(store, digest_of(store, "dev", 1), actor="sec")

    # today's trust no longer has the key that signed revision 1
    ctl.step_down()
    untrusting = Controller(
        store,
        ctl.source,
        Keyring([k for k in keys.keyring() if k.key_id != "ci"]),
        config=ctl.config,
        clock=clock,
    )
    assert untrusting.reconcile_once(full=True).ok
    with pytest.raises(Conflict) as err:
        operations.rollback(store, "helper", "dev", to=1, actor="alice")
    assert err.value.code == "rollback_untrusted" and "'ci'" in err.value.message
    assert store.registry.get_active("helper", "dev").revision == 2
    with pytest.raises(InvalidRequest):
        operations.block(store, "sha256:nothex", actor="sec", reason="x")


def test_blocked_digest_pushed_again_by_force_is_refused_naming_the_block(
    store: Any, repo: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    ctl = make_controller(store, repo, keys, clock, tmp_path)
    first = release(repo, keys, "dev", "v1")
    assert ctl.reconcile_once().ok
    release(repo, keys, "dev", "v2")
    assert ctl.reconcile_once().ok
    old = digest_of(store, "dev", 1)
    operations.block(store, old, actor="sec-team", reason="leaks the system prompt")
    blocked = store.maintenance.gauges().blocked_digests  # kneo_blocked_digests
    # (every active project has a series, 0 included: the PostgreSQL store may hold others')
    assert {project: n for project, n in blocked.items() if n} == {"default": 1}

    repo.git("reset", "--quiet", "--hard", first)
    repo.git("push", "--quiet", "--force", "origin", "HEAD:main")
    result = ctl.reconcile_once()
    assert result.ok
    assert [(o.action.kind.value, o.action.reason) for o in result.outcomes] == [
        ("refuse", "blocked")
    ]
    assert store.registry.get_active("helper", "dev").revision == 2
    status, reason, message = promoted(store, "helper", "dev")
    assert (status, reason) == ("False", "Blocked")
    assert "blocked by sec-team: leaks the system prompt" in message
    [event] = audit(store, "bundle.refused")
    assert event.payload["reasons"][0]["code"] == "digest_blocked"
    assert ctl.reconcile_once().ok and len(audit(store, "bundle.refused")) == 1  # once

    operations.unblock(store, old, actor="sec-team")
    assert ctl.reconcile_once().ok  # nothing was recorded as rejected: it goes through now
    assert store.registry.get_active("helper", "dev").digest == old


def test_downgrade_protection_refuses_an_older_digest_but_not_a_rollback(
    store: Any, repo: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    repo.write("environments/dev.yaml", "version: v1\npromotion: {refuse_downgrade: true}\n")
    ctl = make_controller(store, repo, keys, clock, tmp_path)
    first = release(repo, keys, "dev", "v1")
    assert ctl.reconcile_once().ok
    release(repo, keys, "dev", "v2")
    assert ctl.reconcile_once().ok

    repo.git("reset", "--quiet", "--hard", first)
    repo.git("push", "--quiet", "--force", "origin", "HEAD:main")
    assert ctl.reconcile_once().ok
    assert store.registry.get_active("helper", "dev").revision == 2
    status, reason, message = promoted(store, "helper", "dev")
    assert (status, reason) == ("False", "DowngradeRefused")
    assert "revision 1" in message and "rollback" in message

    done = operations.rollback(store, "helper", "dev", to=1, actor="alice")
    assert done["status"] == "rolled_back"
    assert store.registry.get_active("helper", "dev").digest == digest_of(store, "dev", 1)


def test_rollback_waits_for_the_environments_approvers(
    store: Any, repo: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    repo.write(
        "environments/live.yaml",
        "version: v1\npromotion:\n  require_human_approval: true\n"
        "  approvers: [alice, bob, carol]\n  min_approvals: 2\n",
    )
    ctl = make_controller(store, repo, keys, clock, tmp_path)
    for prompt in ("v1", "v2"):
        release(repo, keys, "live", prompt)
        assert ctl.reconcile_once().ok
        digest = store.registry.list_revisions("helper", "live")[-1].digest
        for who in ("alice", "bob"):
            record_promotion_decision(
                store, task_id("helper", "live", digest), approver=who, decision="approved"
            )
        assert ctl.reconcile_once().ok
    active = store.registry.get_active("helper", "live")
    assert active.digest == digest

    asked = operations.rollback(store, "helper", "live", to=active.revision - 1, actor="dave")
    assert asked["status"] == "awaiting_approval" and asked["min_approvals"] == 2
    cid = asked["continuation_id"]
    assert store.tasks.get_continuation(cid).status == "pending"
    with pytest.raises(Forbidden):
        operations.decide_rollback(store, cid, approver="mallory", decision="approved")
    # alice approved this digest's promotion before: that does not count for its rollback
    first = operations.decide_rollback(store, cid, approver="alice", decision="approved")
    assert (first["approvals"], first["outcome"]) == (1, None)
    assert store.registry.get_active("helper", "live").revision == active.revision
    # the inbox shows it like any promotion, and its resume decides it
    assert cid in {
        c.continuation_id for c in store.tasks.list_continuations(TaskQuery(status="pending")).items
    }
    second = record_promotion_decision(store, cid, approver="carol", decision="approved")
    assert (second.outcome, second.approvals, second.required) == ("approved", 2, 2)
    now_active = store.registry.get_active("helper", "live")
    assert now_active.revision == active.revision + 1
    assert now_active.digest != digest
    assert store.registry.holds().pins.get(("helper", "live")).pinned_by == "dave"
    [event] = audit(store, "bundle.rolled_back")
    assert event.payload["approved_by"] == ["alice", "carol"]
    assert ctl.reconcile_once().ok
    assert store.registry.get_active("helper", "live").revision == now_active.revision


FROZEN_ENV = """version: v1
promotion:
  approvers: [alice, bob]
  min_approvals: 1
  freeze:
    - {reason: year-end close, from: 2026-03-02T00:00:00Z, until: 2026-03-09T00:00:00Z}
    - {reason: no Friday releases, days: [fri], start: "16:00", end: "23:59", timezone: Europe/Berlin}
"""


@pytest.mark.parametrize("full", [False, True], ids=["incremental", "full"])
def test_an_override_still_pending_when_the_freeze_ends_is_closed_by_the_promotion(
    store: Any, repo: Repo, keys: Keys, clock: ManualClock, tmp_path: Path, full: bool
) -> None:
    """A full pass reads every open task up front and closes only those; an incremental one
    asks the store: either way the promotion resolves the override nobody answered."""
    from kneo.controller.promotion import override_task_id

    repo.write("environments/live.yaml", FROZEN_ENV)
    ctl = make_controller(store, repo, keys, clock, tmp_path)
    release(repo, keys, "live", "v1")
    assert ctl.reconcile_once().ok  # 2026-03-01 (a Sunday): no window
    clock.advance(86400 + 3600)  # 2026-03-02T01:00Z: inside the year-end window
    release(repo, keys, "live", "v2")
    result = ctl.reconcile_once()
    digest = next(o.action.digest for o in result.outcomes if o.action.name == "helper")
    cid = override_task_id("helper", "live", digest)
    assert store.tasks.get_continuation(cid).status == "pending"

    clock.advance(7 * 86400)  # 2026-03-09T01:00Z, a Monday: the windows are over
    assert ctl.reconcile_once(full=full).ok
    assert store.registry.get_active("helper", "live").digest == digest
    task = store.tasks.get_continuation(cid)
    assert (task.status, task.context["outcome"]) == ("resolved", "activated")


def test_freeze_window_refuses_a_promotion_and_an_approved_override_passes_it(
    store: Any, repo: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    from kneo.controller.promotion import override_task_id

    repo.write("environments/live.yaml", FROZEN_ENV)
    ctl = make_controller(store, repo, keys, clock, tmp_path)
    release(repo, keys, "live", "v1")
    assert ctl.reconcile_once().ok  # 2026-03-01 (a Sunday): no window
    assert store.registry.get_active("helper", "live").revision == 1

    clock.advance(86400 + 3600)  # 2026-03-02T01:00Z: inside the year-end window
    release(repo, keys, "live", "v2")
    result = ctl.reconcile_once()
    assert result.ok
    [outcome] = [o for o in result.outcomes if o.action.key == ("helper", "live")]
    assert (outcome.action.kind.value, outcome.action.reason, outcome.applied) == (
        "refuse",
        "frozen",
        True,
    )
    assert store.registry.get_active("helper", "live").revision == 1
    status, reason, message = promoted(store, "helper", "live")
    assert (status, reason) == ("False", "Frozen")
    assert "live is frozen: year-end close" in message and "0 of 1 approvals" in message
    digest = result.outcomes[0].action.digest
    cid = override_task_id("helper", "live", digest)
    task = store.tasks.get_continuation(cid)
    assert task.status == "pending" and "during the freeze" in task.requests[0]["prompt"]
    [asked] = audit(store, "promotion.override_requested")
    assert asked.continuation_id == cid
    assert (
        ctl.reconcile_once(full=True).ok and len(audit(store, "promotion.override_requested")) == 1
    )
    with pytest.raises(Forbidden):  # only the environment's approvers
        record_promotion_decision(store, cid, approver="mallory", decision="approved")

    decided = record_promotion_decision(store, cid, approver="alice", decision="approved")
    assert decided.outcome == "approved"
    assert ctl.reconcile_once().ok
    assert (
        store.registry.get_active("helper", "live").digest == digest
    )  # through, inside the window
    assert promoted(store, "helper", "live")[:2] == ("True", "Promoted")

    release(repo, keys, "live", "v3")  # still frozen; this time the override is refused
    assert ctl.reconcile_once().ok
    third = store.registry.list_revisions("helper", "live")[-1]
    assert third.revision == 2  # nothing recorded for a refusal
    v3 = next(o.action.digest for o in ctl.plan().outcomes if o.action.name == "helper")
    record_promotion_decision(
        store, override_task_id("helper", "live", v3), approver="bob", decision="rejected"
    )
    assert ctl.reconcile_once().ok
    assert "override rejected by bob" in promoted(store, "helper", "live")[2]

    clock.advance(7 * 86400)  # 2026-03-09T01:00Z, a Monday: the windows are over
    assert ctl.reconcile_once().ok
    assert store.registry.get_active("helper", "live").digest == v3


def test_weekly_freeze_window_in_a_timezone(
    store: Any, repo: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    repo.write("environments/live.yaml", FROZEN_ENV)
    ctl = make_controller(store, repo, keys, clock, tmp_path)
    clock.advance(12 * 86400 + 15 * 3600 + 30 * 60)  # Fri 2026-03-13 15:30Z = 16:30 Berlin
    release(repo, keys, "live", "v1")
    assert ctl.reconcile_once().ok
    assert store.registry.get_active("helper", "live") is None
    assert (
        "no Friday releases (fri 16:00-23:59 Europe/Berlin)" in promoted(store, "helper", "live")[2]
    )
    clock.advance(9 * 3600)  # Sat 00:30Z = 01:30 Berlin: over
    assert ctl.reconcile_once().ok
    assert store.registry.get_active("helper", "live").revision == 1


def test_a_bad_freeze_window_is_an_invalid_environment_file(
    store: Any, repo: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    repo.write(
        "environments/live.yaml",
        "version: v1\npromotion:\n  freeze: [{reason: x, days: [fri], start: '25:00', end: '10:00'}]\n",
    )
    release(repo, keys, "live", "v1")
    result = make_controller(store, repo, keys, clock, tmp_path).reconcile_once()
    assert result.ok and store.registry.get_active("helper", "live") is None
    [problem] = [p for p in result.problems if p.get("path") == "bundles/helper/live.json"]
    assert problem["code"] == "environment_invalid" and "freeze" in problem["message"]
