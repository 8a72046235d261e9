"""Taking a bundle out of an environment is gated like putting it in (issue 70, item 5).

Real Git repositories, the real controller and store (SQLite and PostgreSQL): a commit
that deletes ``bundles/helper/prod.json`` (no signature, no approval), or renames prod's
environment file, does not prune prod's serving revision while prod's policy in force asks
approvers (an approval task, as a promotion) or more than one signature (refused). The
service journey over a real ``git http-backend`` is in ``test_prune_gate_service.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from gitops_fixtures import ENV_FILES, Keys, Repo, make_controller

from kneo.clock import ManualClock
from kneo.controller.controller import Controller
from kneo.controller.promotion import record_promotion_decision, task_id
from kneo.controller.prune_gate import prune_subject, prune_task_id
from kneo.errors import Forbidden, NotFound
from kneo.projects import DEFAULT_PROJECT
from kneo.store import AuditQuery


def audit(store: Any, event_type: str) -> list[Any]:
    return [
        e for e in store.audit.list_audit(AuditQuery(limit=500)).items if e.event_type == event_type
    ]


def promoted(
    store: Any, repo: Repo, keys: Keys, clock: ManualClock, tmp_path: Path, **config: Any
) -> Controller:
    """helper active in dev, staging and prod (prod's promotion approved by alice)."""
    for env in ("dev", "staging", "prod"):
        repo.write(f"bundles/helper/{env}.json", keys.bundle("helper", env))
    repo.commit("helper everywhere")
    ctl = make_controller(store, repo, keys, clock, tmp_path, **config)
    assert ctl.reconcile_once().ok
    digest = store.registry.get_active("helper", "staging").digest
    record_promotion_decision(
        store,
        task_id("helper", "prod", digest, store.project_id),  # scoped to the store's project
        approver="alice",
        decision="approved",
    )
    assert ctl.reconcile_once().ok
    assert store.registry.get_active("helper", "prod").digest == digest
    return ctl


def promoted_condition(store: Any, env: str) -> tuple[str, str, str]:
    found = {c.type: c for c in store.registry.list_conditions("helper", env)}
    c = found["Promoted"]
    return c.status, c.reason, c.message


def prune_task(store: Any, env: str = "prod", project: str = DEFAULT_PROJECT) -> str:
    active = store.registry.get_active("helper", env)
    from kneo.controller.model import RevisionRef

    ref = RevisionRef(active.revision, active.digest, "active")
    return prune_task_id(project, "helper", env, prune_subject(ref))


def test_an_unsigned_prune_of_prod_is_held_until_its_approvers_approve(
    store: Any, repo: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    ctl = promoted(store, repo, keys, clock, tmp_path)
    serving = store.registry.get_active("helper", "prod")
    cid = prune_task(store)
    for env in ("dev", "prod"):
        repo.remove(f"bundles/helper/{env}.json")
    repo.commit("remove helper from dev and prod")  # unsigned, unapproved

    held = ctl.reconcile_once()
    assert held.ok, held.error
    # dev asks no approval and one signature: pruned at once
    assert store.registry.get_active("helper", "dev") is None
    assert promoted_condition(store, "dev")[1] == "Pruned"
    # prod keeps serving the very revision, and says why
    assert store.registry.get_active("helper", "prod").revision == serving.revision
    status, reason, message = promoted_condition(store, "prod")
    assert (status, reason) == ("False", "PruneHeld")
    assert "0 of 1 approvals from alice, bob, carol" in message and "keeps serving" in message
    assert [p["code"] for p in held.problems if p["code"].startswith("prune_")] == ["prune_held"]
    shown = ctl.status()["prunes"]
    assert [(h["bundle"], h["environment"], h["state"], h["task"]) for h in shown] == [
        ("helper", "prod", "held", cid)
    ]
    assert shown[0]["needs"]["approvers"] == ["alice", "bob", "carol"]
    task = store.tasks.get_continuation(cid)
    assert task.status == "pending" and task.workflow_kind == "promotion"
    assert task.requests[0]["prompt"] == (
        f"Remove helper@{serving.digest} (revision {serving.revision}) from prod?"
    )
    assert len(audit(store, "prune.requested")) == 1
    assert len(audit(store, "bundle.prune_held")) == 1
    # prod's approvers are told, as of a promotion waiting for them
    told: list[Any] = []
    store.notifications.route_notifications(lambda event: told.append(event) or [])
    assert ("promotion.awaiting_approval", cid, "prod") in {
        (e.event_type, e.continuation_id, e.environment) for e in told
    }

    # the next passes hold it without asking again
    again = ctl.reconcile_once()
    assert again.ok and store.registry.get_active("helper", "prod") is not None
    assert len(audit(store, "prune.requested")) == 1
    assert len(audit(store, "bundle.prune_held")) == 1

    # someone who is no approver cannot decide it
    with pytest.raises(Forbidden):
        record_promotion_decision(store, cid, approver="mallory", decision="approved")
    decided = record_promotion_decision(store, cid, approver="bob", decision="approved")
    assert decided.outcome == "approved"
    assert [e.actor for e in audit(store, "prune.approved")] == ["bob"]
    assert audit(store, "promotion.approved")[-1].actor == "alice"  # the promotion's only

    pruned = ctl.reconcile_once()
    assert pruned.ok, pruned.error
    assert store.registry.get_active("helper", "prod") is None
    assert promoted_condition(store, "prod")[1] == "Pruned"
    last = audit(store, "bundle.pruned")[0]  # newest first
    assert last.payload["environment"] == "prod" and last.payload["approved_by"] == ["bob"]
    assert ctl.status()["prunes"] == []
    assert store.tasks.get_continuation(cid).status == "resolved"
    assert not [p for p in pruned.problems if p["code"].startswith("prune_")]


def test_a_rejected_prune_keeps_serving_and_a_restored_file_withdraws_the_task(
    store: Any, repo: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    ctl = promoted(store, repo, keys, clock, tmp_path)
    serving = store.registry.get_active("helper", "prod")
    cid = prune_task(store)
    repo.remove("bundles/helper/prod.json")
    repo.commit("remove helper from prod")
    assert ctl.reconcile_once().ok
    record_promotion_decision(store, cid, approver="carol", decision="rejected")
    rejected = ctl.reconcile_once()
    assert rejected.ok
    assert store.registry.get_active("helper", "prod").revision == serving.revision
    _, reason, message = promoted_condition(store, "prod")
    assert reason == "PruneRejected" and "rejected by carol" in message
    assert [h["state"] for h in ctl.status()["prunes"]] == ["rejected"]
    assert ctl.reconcile_once().ok  # not asked again
    assert len(audit(store, "prune.requested")) == 1

    # a second removal asked, then the file restored before anyone decides: task withdrawn
    repo.write("bundles/helper/prod.json", keys.bundle("helper", "prod"))
    repo.commit("restore")
    assert ctl.reconcile_once().ok
    assert ctl.status()["prunes"] == []
    assert promoted_condition(store, "prod")[1] == "Promoted"


def test_a_held_prune_whose_file_returns_closes_its_task(
    store: Any, repo: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    ctl = promoted(store, repo, keys, clock, tmp_path)
    cid = prune_task(store)
    repo.remove("bundles/helper/prod.json")
    repo.commit("remove")
    assert ctl.reconcile_once().ok
    assert store.tasks.get_continuation(cid).status == "pending"
    repo.write("bundles/helper/prod.json", keys.bundle("helper", "prod"))
    repo.commit("restore")
    assert ctl.reconcile_once().ok
    task = store.tasks.get_continuation(cid)
    assert task.status == "resolved" and task.context["outcome"] == "withdrawn"
    assert ctl.status()["prunes"] == []
    # removed again: asked again, on a task of its own state (the old one stays resolved)
    repo.remove("bundles/helper/prod.json")
    repo.commit("remove again")
    assert ctl.reconcile_once().ok
    assert store.tasks.get_continuation(cid).status == "pending"
    assert store.registry.get_active("helper", "prod") is not None


def test_renaming_prods_environment_file_holds_the_prune(
    store: Any, repo: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    """prod.yaml to production.yaml (and the bundle with it): prod's policy stays in force
    (``policy_kept``), and with it the gate on taking its revision out."""
    ctl = promoted(store, repo, keys, clock, tmp_path)
    serving = store.registry.get_active("helper", "prod")
    repo.git("mv", "environments/prod.yaml", "environments/production.yaml")
    repo.git("mv", "bundles/helper/prod.json", "bundles/helper/production.json")
    repo.commit("rename prod")
    result = ctl.reconcile_once()
    assert result.ok, result.error
    codes = {p["code"] for p in result.problems}
    assert {"policy_kept", "prune_held"} <= codes
    assert store.registry.get_active("helper", "prod").revision == serving.revision
    assert promoted_condition(store, "prod")[1] == "PruneHeld"
    assert store.tasks.get_continuation(prune_task(store)).status == "pending"


def test_a_commit_that_drops_the_approval_and_the_bundle_is_judged_by_the_policy_in_force(
    store: Any, repo: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    """Whoever can push must not lower the bar and pass it in one commit."""
    ctl = promoted(store, repo, keys, clock, tmp_path)
    repo.write("environments/prod.yaml", "version: v1\npromotion: {require_approved_in: staging}\n")
    repo.remove("bundles/helper/prod.json")
    repo.commit("loosen prod and remove helper")
    result = ctl.reconcile_once()
    assert result.ok
    assert {"policy_held", "prune_held"} <= {p["code"] for p in result.problems}
    assert store.registry.get_active("helper", "prod") is not None


TWO_KEYS = "version: v1\nrequired_signatures: 2\naccepted_key_ids: [ci, release]\n"


def test_where_only_signatures_guard_prod_a_deletion_is_refused_until_approvers_decide(
    store: Any, repo: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    repo.write("environments/prod.yaml", TWO_KEYS)
    repo.write("bundles/helper/prod.json", keys.bundle("helper", "prod", cosign="release"))
    repo.write("bundles/other/dev.json", keys.bundle("other", "dev"))  # the commit is not empty
    repo.commit("two keys for prod")
    ctl = make_controller(store, repo, keys, clock, tmp_path)
    assert ctl.reconcile_once().ok
    serving = store.registry.get_active("helper", "prod")
    assert serving is not None
    repo.remove("bundles/helper/prod.json")
    repo.commit("remove")
    refused = ctl.reconcile_once()
    assert refused.ok
    _, reason, message = promoted_condition(store, "prod")
    assert reason == "PruneRefused"
    assert "asks 2 signatures (ci, release)" in message and "require human approval" in message
    assert [h["state"] for h in ctl.status()["prunes"]] == ["refused"]
    assert ctl.status()["prunes"][0]["task"] is None
    assert store.registry.get_active("helper", "prod").revision == serving.revision
    assert audit(store, "prune.requested") == []

    # the way out the message names: approvers (a tightening takes effect at once)
    repo.write(
        "environments/prod.yaml",
        TWO_KEYS + "promotion: {require_human_approval: true, approvers: [alice]}\n",
    )
    repo.commit("prod asks alice")
    assert ctl.reconcile_once().ok
    assert promoted_condition(store, "prod")[1] == "PruneHeld"
    record_promotion_decision(store, prune_task(store), approver="alice", decision="approved")
    assert ctl.reconcile_once().ok
    assert store.registry.get_active("helper", "prod") is None


def test_a_pending_promotion_is_withdrawn_at_once(
    store: Any, repo: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    """Nothing serves yet: a removal takes nothing out of production."""
    for env in ("dev", "staging", "prod"):
        repo.write(f"bundles/helper/{env}.json", keys.bundle("helper", env))
    repo.commit("helper")
    ctl = make_controller(store, repo, keys, clock, tmp_path)
    assert ctl.reconcile_once().ok
    pending = [r for r in store.registry.list_revisions("helper", "prod")]
    assert [r.status for r in pending] == ["pending_approval"]
    repo.remove("bundles/helper/prod.json")
    repo.commit("remove")
    result = ctl.reconcile_once()
    assert result.ok and ctl.status()["prunes"] == []
    assert store.registry.list_revisions("helper", "prod")[-1].status == "rejected"


def test_one_projects_held_prune_leaves_another_projects_alone(
    store: Any, repo: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    """Two projects hold the same bundle, digest and revision in prod (two repositories
    with the same signed files): each removal has a task of its own, decided in its own
    project, and one project's approval prunes nothing of the other's."""
    for team in ("team-a", "team-b"):
        store.projects.create_project(team)
    a, b = store.for_project("team-a"), store.for_project("team-b")
    # one leader lock each here (a service leads every project under one)
    ctl_a = promoted(a, repo, keys, clock, tmp_path / "a", name="team-a")
    # team-b's prod asked no approval when helper went in, and does now (a tightening)
    repo_b = Repo(tmp_path / "git-b")
    for env, text in ENV_FILES.items():
        repo_b.write(f"environments/{env}.yaml", "version: v1\n" if env == "prod" else text)
        repo_b.write(f"bundles/helper/{env}.json", keys.bundle("helper", env))
    repo_b.commit("helper")
    ctl_b = make_controller(b, repo_b, keys, clock, tmp_path / "b", name="team-b")
    assert ctl_b.reconcile_once().ok
    repo_b.write("environments/prod.yaml", ENV_FILES["prod"])
    repo_b.commit("prod asks approvers")
    assert ctl_b.reconcile_once().ok
    same = [x.registry.get_active("helper", "prod") for x in (a, b)]
    assert same[0].digest == same[1].digest and same[0].revision == same[1].revision
    ids = {"team-a": prune_task(a, project="team-a"), "team-b": prune_task(b, project="team-b")}
    assert ids["team-a"] != ids["team-b"]

    for r in (repo, repo_b):
        r.remove("bundles/helper/prod.json")
        r.commit("remove from prod")
    for ctl in (ctl_a, ctl_b):
        assert ctl.reconcile_once().ok
    assert a.tasks.get_continuation(ids["team-a"]).status == "pending"
    assert b.tasks.get_continuation(ids["team-b"]).status == "pending"
    with pytest.raises(NotFound):  # a project sees no other project's task
        b.tasks.get_continuation(ids["team-a"])
    with pytest.raises(NotFound):  # nor decides it
        record_promotion_decision(b, ids["team-a"], approver="alice", decision="approved")
    record_promotion_decision(a, ids["team-a"], approver="alice", decision="approved")
    for ctl in (ctl_a, ctl_b):
        assert ctl.reconcile_once().ok
    assert a.registry.get_active("helper", "prod") is None
    assert b.registry.get_active("helper", "prod") is not None  # b's still waits
    assert [h["task"] for h in ctl_b.status()["prunes"]] == [ids["team-b"]]
    assert ctl_a.status()["prunes"] == []
    assert b.tasks.get_continuation(ids["team-b"]).status == "pending"
    assert audit(b, "prune.approved") == [] and len(audit(a, "prune.approved")) == 1
