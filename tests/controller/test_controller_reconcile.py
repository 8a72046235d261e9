"""Acceptance journeys with real Git repositories (bare remote over file://) and a real store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from gitops_fixtures import Keys, Repo, make_controller, spec

from kneo.clock import ManualClock
from kneo.controller.promotion import record_promotion_decision, task_id
from kneo.controller.runtime import require_approved_bundle, resolve_bundle_for_run
from kneo.errors import BundleNotApproved, Conflict, Forbidden, NotFound
from kneo.store import AuditQuery, RegistryQuery, TaskQuery


def kinds(result: Any) -> list[tuple[str, str, str]]:
    return [
        (o.action.kind.value, o.action.name, o.action.environment)
        for o in result.outcomes
        if o.action.kind.value not in ("noop", "wait_for_upstream")
    ]


def audit_types(store: Any) -> list[str]:
    return [e.event_type for e in store.audit.list_audit(AuditQuery(limit=1000)).items]


def test_signed_bundle_for_dev_is_active_after_one_reconcile(
    store, repo: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    """Commit a signed bundle -> one reconcile -> active and runnable by name; same commit twice writes nothing."""
    repo.write("bundles/helper/dev.json", keys.bundle("helper", "dev"))
    commit = repo.commit("add helper")
    ctl = make_controller(store, repo, keys, clock, tmp_path)
    result = ctl.reconcile_once()
    assert result.ok, result.error
    assert kinds(result) == [("activate", "helper", "dev")]
    spec_data, revision, digest, pinned = resolve_bundle_for_run(store, "helper", "dev")
    assert (revision, pinned, spec_data) == (1, commit, spec())
    assert digest.startswith("sha256:")
    conditions = {
        c.type: (c.status, c.reason) for c in store.registry.list_conditions("helper", "dev")
    }
    assert conditions == {
        "Verified": ("True", "Verified"),
        "Promoted": ("True", "Promoted"),
        "Ready": ("True", "Ready"),
    }
    events = audit_types(store)
    assert "bundle.promoted" in events
    before = (
        len(events),
        store.registry.list_revisions("helper", "dev"),
        store.registry.list_conditions(),
    )
    clock.advance(5)
    again = ctl.reconcile_once()
    assert again.ok and again.written == []
    assert (
        len(audit_types(store)),
        store.registry.list_revisions("helper", "dev"),
        store.registry.list_conditions(),
    ) == before
    status = ctl.status()
    assert status["last_fetched_commit"] == commit and status["is_leader"]


def test_spec_path_run_is_refused_where_approved_bundles_are_required() -> None:
    from kneo.policy.environment import EnvironmentPolicy

    prod = EnvironmentPolicy(environment="prod", runs={"require_approved_bundle": True})
    with pytest.raises(BundleNotApproved) as err:
        require_approved_bundle(prod)
    assert err.value.code == "bundle_not_approved" and err.value.http_status == 403
    require_approved_bundle(EnvironmentPolicy(environment="dev"))


def test_tampered_bundle_is_rejected_and_the_earlier_revision_keeps_serving(
    store, repo: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    repo.write("bundles/helper/dev.json", keys.bundle("helper", "dev"))
    repo.commit()
    ctl = make_controller(store, repo, keys, clock, tmp_path)
    assert ctl.reconcile_once().ok
    document = json.loads(keys.bundle("helper", "dev", spec("v2")))
    document["spec"]["agent"]["system_prompt"] = "tampered"
    repo.write("bundles/helper/dev.json", json.dumps(document))
    repo.commit("tamper")
    result = ctl.reconcile_once()
    assert kinds(result) == [("reject", "helper", "dev")]
    assert result.outcomes[0].action.reasons[0].code == "bundle_digest_mismatch"
    assert resolve_bundle_for_run(store, "helper", "dev").revision == 1
    ready = {c.type: c for c in store.registry.list_conditions("helper", "dev")}
    assert (ready["Verified"].status, ready["Verified"].reason) == (
        "False",
        "bundle_digest_mismatch",
    )
    assert ready["Ready"].reason == "ServingPrevious"
    assert "bundle.rejected" in audit_types(store)
    assert ctl.reconcile_once().written == []  # rejected once, not on every pass


def _promote_to_staging(repo: Repo, keys: Keys, body: dict[str, Any]) -> None:
    for env in ("dev", "staging", "prod"):
        repo.write(f"bundles/helper/{env}.json", keys.bundle("helper", env, body))


def test_prod_waits_for_staging_then_a_human_task_then_activates(
    store, repo: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    """require_approved_in + require_human_approval: wait upstream, ask, approve -> active."""
    repo.write("bundles/helper/prod.json", keys.bundle("helper", "prod"))
    repo.commit("prod first")
    ctl = make_controller(store, repo, keys, clock, tmp_path)
    first = ctl.reconcile_once()
    assert kinds(first) == []
    assert [o.action.kind.value for o in first.outcomes] == ["wait_for_upstream"]
    assert store.tasks.list_continuations(TaskQuery(workflow_kind="promotion")).items == []

    _promote_to_staging(repo, keys, spec())
    repo.commit("dev and staging")
    second = ctl.reconcile_once()
    assert kinds(second) == [
        ("activate", "helper", "dev"),
        ("activate", "helper", "staging"),
        ("wait_for_approval", "helper", "prod"),
    ]
    tasks = store.tasks.list_continuations(TaskQuery(workflow_kind="promotion")).items
    assert len(tasks) == 1 and tasks[0].run_id is None
    digest = store.registry.get_active("helper", "staging").digest
    assert tasks[0].requests[0]["prompt"] == f"Promote helper@{digest} to prod?"
    assert store.registry.get_active("helper", "prod") is None
    assert ctl.reconcile_once().written == []  # the task is not opened twice

    with pytest.raises(Forbidden):
        record_promotion_decision(
            store, tasks[0].continuation_id, approver="mallory", decision="approved"
        )
    outcome = record_promotion_decision(
        store, tasks[0].continuation_id, approver="alice", decision="approved"
    )
    assert outcome.outcome == "approved"
    third = ctl.reconcile_once()
    assert kinds(third) == [("activate", "helper", "prod")]
    active = store.registry.get_active("helper", "prod")
    assert active.digest == digest and "alice" in active.approved_by
    assert store.tasks.list_continuations(TaskQuery(workflow_kind="promotion")).items == []
    assert {"promotion.requested", "promotion.approved", "bundle.promoted"} <= set(
        audit_types(store)
    )


def test_rejected_promotion_leaves_the_old_revision(
    store, repo: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    _promote_to_staging(repo, keys, spec("v1"))
    repo.commit("v1")
    ctl = make_controller(store, repo, keys, clock, tmp_path)
    ctl.reconcile_once()
    record_promotion_decision(
        store,
        store.tasks.list_continuations(TaskQuery(workflow_kind="promotion"))
        .items[0]
        .continuation_id,
        approver="bob",
        decision="approved",
    )
    ctl.reconcile_once()
    v1 = store.registry.get_active("helper", "prod")
    _promote_to_staging(repo, keys, spec("v2"))
    repo.commit("v2")
    ctl.reconcile_once()
    (task,) = store.tasks.list_continuations(TaskQuery(workflow_kind="promotion")).items
    record_promotion_decision(store, task.continuation_id, approver="carol", decision="rejected")
    result = ctl.reconcile_once()
    assert kinds(result) == [("reject", "helper", "prod")]
    assert result.outcomes[-1].action.reasons[0].code == "promotion_rejected"
    assert store.registry.get_active("helper", "prod") == v1
    assert ctl.reconcile_once().written == []
    assert "promotion.rejected" in audit_types(store)


def test_min_approvals_two_needs_two_different_approvers(
    store, repo: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    repo.write(
        "environments/prod.yaml",
        "version: v1\npromotion:\n  require_approved_in: staging\n"
        "  require_human_approval: true\n  approvers: [alice, bob, carol]\n  min_approvals: 2\n",
    )
    _promote_to_staging(repo, keys, spec())
    repo.commit()
    ctl = make_controller(store, repo, keys, clock, tmp_path)
    ctl.reconcile_once()
    (task,) = store.tasks.list_continuations(TaskQuery(workflow_kind="promotion")).items
    assert (
        record_promotion_decision(
            store, task.continuation_id, approver="alice", decision="approved"
        ).outcome
        is None
    )
    with pytest.raises(Conflict):
        record_promotion_decision(
            store, task.continuation_id, approver="alice", decision="approved"
        )
    assert (
        ctl.reconcile_once().written == [] and store.registry.get_active("helper", "prod") is None
    )
    assert (
        record_promotion_decision(
            store, task.continuation_id, approver="bob", decision="approved"
        ).outcome
        == "approved"
    )
    assert kinds(ctl.reconcile_once()) == [("activate", "helper", "prod")]
    assert set(store.registry.get_active("helper", "prod").approved_by) >= {"alice", "bob"}


def test_deleted_file_is_pruned_and_force_push_is_followed(
    store, repo: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    repo.write("bundles/helper/dev.json", keys.bundle("helper", "dev", spec("v1")))
    repo.write("bundles/other/dev.json", keys.bundle("other", "dev"))
    old = repo.commit("v1")
    ctl = make_controller(store, repo, keys, clock, tmp_path)
    ctl.reconcile_once()
    v1 = store.registry.get_active("helper", "dev").digest
    repo.write("bundles/helper/dev.json", keys.bundle("helper", "dev", spec("v2")))
    repo.remove("bundles/other")
    repo.commit("v2, drop other")
    result = ctl.reconcile_once()
    assert sorted(kinds(result)) == [("activate", "helper", "dev"), ("prune", "other", "dev")]
    assert store.registry.get_active("other", "dev") is None and "bundle.pruned" in audit_types(
        store
    )
    repo.git("reset", "--quiet", "--hard", old)
    repo.git("push", "--quiet", "--force", "origin", "HEAD:main")
    back = ctl.reconcile_once()
    assert back.commit == old and back.ok
    assert store.registry.get_active("helper", "dev").digest == v1
    assert store.registry.get_active("other", "dev") is not None


def test_commit_deleting_everything_prunes_only_when_allowed(
    store, repo: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    repo.write("bundles/helper/dev.json", keys.bundle("helper", "dev"))
    repo.commit()
    ctl = make_controller(store, repo, keys, clock, tmp_path)
    ctl.reconcile_once()
    repo.remove("bundles")
    repo.commit("delete everything")
    result = ctl.reconcile_once()
    assert result.ok and kinds(result) == []
    assert result.problems[-1]["code"] == "empty_desired_state"
    assert store.registry.get_active("helper", "dev") is not None
    assert "controller.problems" in audit_types(store)
    allowing = make_controller(store, repo, keys, clock, tmp_path, allow_empty=True, name="default")
    ctl.step_down()
    assert kinds(allowing.reconcile_once()) == [("prune", "helper", "dev")]


def test_drift_is_reverted_unless_suspended(
    store, repo: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    repo.write("bundles/helper/dev.json", keys.bundle("helper", "dev", spec("v1")))
    repo.commit()
    ctl = make_controller(store, repo, keys, clock, tmp_path)
    ctl.reconcile_once()
    repo.write("bundles/helper/dev.json", keys.bundle("helper", "dev", spec("v2")))
    repo.commit()
    ctl.reconcile_once()
    with store.transaction() as tx:
        tx.set_revision_status("helper", "dev", 1, "active")  # someone rolls back by hand
    result = ctl.reconcile_once()
    assert kinds(result) == [("drift_revert", "helper", "dev")]
    assert store.registry.get_active("helper", "dev").revision == 2
    assert "bundle.drift_reverted" in audit_types(store)
    with store.transaction() as tx:
        tx.set_suspended("helper", "dev", True, reason="incident")
    with store.transaction() as tx:
        tx.set_revision_status("helper", "dev", 1, "active")
    suspended = ctl.reconcile_once()
    assert kinds(suspended) == [] and suspended.outcomes[0].action.drift
    assert store.registry.get_active("helper", "dev").revision == 1
    with store.transaction() as tx:
        tx.set_suspended("helper", "dev", False)
    assert kinds(ctl.reconcile_once()) == [("drift_revert", "helper", "dev")]


def test_two_controllers_one_leader_and_takeover(
    store, repo: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    """Only the lock holder reconciles; when its lock lapses the standby takes over."""
    repo.write("bundles/helper/dev.json", keys.bundle("helper", "dev"))
    repo.commit()
    first = make_controller(store, repo, keys, clock, tmp_path, lease_seconds=30)
    second = make_controller(store, repo, keys, clock, tmp_path / "b", lease_seconds=30)
    assert first.reconcile_once().leader
    standby = second.reconcile_once()
    assert not standby.leader and standby.outcomes == [] and standby.stats["leader"] == first.owner
    clock.advance(31)  # the leader died: nobody renews its lock
    repo.write("bundles/helper/dev.json", keys.bundle("helper", "dev", spec("v2")))
    repo.commit()
    took_over = second.reconcile_once()
    assert took_over.leader and kinds(took_over) == [("activate", "helper", "dev")]
    assert not first.reconcile_once().leader
    assert second.status()["is_leader"]


def test_plan_is_a_dry_run(
    store, repo: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    repo.write("bundles/helper/dev.json", keys.bundle("helper", "dev"))
    repo.commit()
    ctl = make_controller(store, repo, keys, clock, tmp_path)
    result = ctl.plan()
    assert result.dry_run and [o.action.kind.value for o in result.outcomes] == ["activate"]
    assert (
        store.registry.list_registry(RegistryQuery(status=None)).items == []
        and store.audit.list_audit(AuditQuery(limit=10)).items == []
    )
    with pytest.raises(NotFound):
        resolve_bundle_for_run(store, "helper", "dev")


def test_incremental_reconcile_verifies_only_what_changed(
    store, repo: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    for i in range(5):
        repo.write(f"bundles/b{i}/dev.json", keys.bundle(f"b{i}", "dev"))
    repo.commit()
    ctl = make_controller(store, repo, keys, clock, tmp_path)
    assert ctl.reconcile_once().stats["verified"] == 5
    repo.write("bundles/b3/dev.json", keys.bundle("b3", "dev", spec("changed")))
    repo.commit()
    result = ctl.reconcile_once()
    # the four unchanged files are not even listed (same blobs as the reconciled commit)
    assert result.stats["mode"] == "incremental" and result.stats["scope"] == 1
    assert result.stats["verified"] == 1 and result.stats["cached"] == 0
    assert kinds(result) == [("activate", "b3", "dev")]


def test_promotion_task_id_is_stable() -> None:
    assert task_id("a", "prod", "sha256:1") == task_id("a", "prod", "sha256:1")
    assert task_id("a", "prod", "sha256:1") != task_id("a", "prod", "sha256:2")


def test_a_load_longer_than_the_lease_keeps_the_leader_lock(
    store, repo: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    """Judging the files takes 60 s here (a cold pass on a busy host): the leader renews
    its 30 s lease while it loads, so the pass applies instead of finding its lock lapsed."""
    for i in range(6):
        repo.write(f"bundles/b{i}/dev.json", keys.bundle(f"b{i}", "dev"))
    repo.commit()
    ctl = make_controller(store, repo, keys, clock, tmp_path, lease_seconds=30)
    result = ctl.reconcile_once(progress=lambda stage, done, total: clock.advance(10))
    assert result.error is None, result.error
    assert len(kinds(result)) == 6 and ctl.is_leader


def test_a_lock_taken_over_while_loading_stops_the_pass_before_it_applies(
    store, repo: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    """The leader stalls mid-load past its lease and a standby takes the lock: the stalled
    pass stops at its next renewal with ``not_leader`` and writes nothing."""
    for i in range(6):
        repo.write(f"bundles/b{i}/dev.json", keys.bundle(f"b{i}", "dev"))
    repo.commit()
    first = make_controller(store, repo, keys, clock, tmp_path, lease_seconds=30)
    second = make_controller(store, repo, keys, clock, tmp_path / "b", lease_seconds=30)

    def stall(stage: str, done: int, total: int) -> None:
        if done == 3:
            clock.advance(31)
            assert second.try_lead()

    result = first.reconcile_once(progress=stall)
    assert result.error is not None and result.error["code"] == "not_leader"
    assert result.error["stage"] == "load" and not first.is_leader
    assert store.registry.list_registry(RegistryQuery(status=None)).items == []
