"""Policy is code too: a push cannot loosen the gates that judge it (issue 53).

The attacker can push to the watched branch and their CI holds one trusted key (``ci``).
Each test drives a real Git repository and the real controller on SQLite and PostgreSQL:
one commit loosens ``environments/prod.yaml`` (two signatures to one, human approval, the
freeze and downgrade refusal removed) and carries a bundle signed by ``ci`` alone. The
controller holds the loosening (the policy in force keeps judging every bundle, those of the
same commit included): the bundle is refused by the rules in force and the serving revision
keeps serving, with a problem, a controller condition and an audit event naming the commit
and the gates. Deleting, corrupting or duplicating keys in the file keeps the last verified
policy; a new environment file cannot take a bundle an existing environment refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from kneo.clock import ManualClock
from kneo.controller.promotion import record_promotion_decision, task_id
from kneo.controller.ratchet import policy_subject, policy_task_id
from kneo.errors import Forbidden
from kneo.policy.floors import parse_floors
from kneo.store import AuditQuery, TaskQuery, open_store
from tests.controller.gitops_fixtures import Keys, Repo, make_controller, sign_policy, spec

BEFORE_FREEZE = datetime(2026, 2, 1, 12, 0, tzinfo=UTC)
IN_FREEZE = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)

STRICT_PROD = """version: v1
required_signatures: 2
accepted_key_ids: [ci, release]
promotion:
  require_human_approval: true
  approvers: [alice, bob]
  min_approvals: 2
  refuse_downgrade: true
  freeze:
    - reason: quarter close
      from: "2026-03-01T00:00:00Z"
      until: "2026-04-01T00:00:00Z"
"""

LOOSE_PROD = """version: v1
required_signatures: 1
accepted_key_ids: [ci, release]
promotion:
  approvers: [alice, bob]
  min_approvals: 2
"""


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    clock = ManualClock(BEFORE_FREEZE)
    if request.param == "postgres":
        url = request.getfixturevalue("pg_database")()
    else:
        url = f"sqlite:///{tmp_path / 'kneo.sqlite'}"
    s = open_store(url, clock=clock)
    yield s
    s.close()


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    return Keys(tmp_path / "keys")


def prod_in_force(world: World) -> str:
    """The digest of prod's policy in force, as the controller stored it."""
    from kneo.controller.policy_record import PolicyRecord, record_key

    record = PolicyRecord.from_dict(world.store.metadata.get_metadata(record_key("default")))
    assert record is not None
    return record.in_force["prod"].digest


def audit(store: Any, event_type: str) -> list[Any]:
    return list(store.audit.list_audit(AuditQuery(event_type=event_type, limit=100)).items)


def approve(store: Any, env: str, digest: str, *people: str) -> None:
    for who in people:
        record_promotion_decision(
            store, task_id("helper", env, digest), approver=who, decision="approved"
        )


class World:
    """A repository whose prod needs two signatures, two approvers, no downgrades and a
    freeze in March, serving revision 2 (v1, after v0; both approved by alice and bob
    before the freeze)."""

    def __init__(self, store: Any, keys: Keys, tmp_path: Path, **config: Any) -> None:
        self.store, self.keys = store, keys
        self.clock: ManualClock = store.clock
        self.repo = Repo(tmp_path / "git")
        self.repo.write("environments/prod.yaml", STRICT_PROD)
        self.ctl = make_controller(store, self.repo, keys, self.clock, tmp_path, **config)
        self.v0 = self.release("v0")
        self.v1 = self.release("v1")
        assert store.registry.get_active("helper", "prod").revision == 2
        self.clock.set(IN_FREEZE)

    def release(self, prompt: str) -> str:
        """A bundle signed by both keys, promoted with alice's and bob's approvals."""
        self.push(prompt, {"bundles/helper/prod.json": self.signed(prompt, "release")})
        assert self.ctl.reconcile_once().ok
        digest = str(self.newest().digest)
        approve(self.store, "prod", digest, "alice", "bob")
        assert self.ctl.reconcile_once().ok
        assert self.store.registry.get_active("helper", "prod").digest == digest
        return digest

    def signed(self, prompt: str, cosign: str | None = None) -> str:
        return self.keys.bundle("helper", "prod", spec(prompt), cosign=cosign)

    def push(self, message: str, files: dict[str, str], *, remove: tuple[str, ...] = ()) -> str:
        for path, text in files.items():
            self.repo.write(path, text)
        for path in remove:
            self.repo.remove(path)
        return self.repo.commit(message)

    def newest(self) -> Any:
        return max(self.store.registry.list_revisions("helper", "prod"), key=lambda r: r.revision)

    def serving(self) -> int:
        return int(self.store.registry.get_active("helper", "prod").revision)

    def policy(self, env: str = "prod") -> dict[str, Any]:
        return dict(self.ctl.status()["policy"][env])


@pytest.fixture
def world(store: Any, keys: Keys, tmp_path: Path) -> World:
    return World(store, keys, tmp_path)


def test_one_commit_loosening_prod_with_a_one_key_bundle_is_held(world: World) -> None:
    store = world.store
    commit = world.push(
        "loosen prod",
        {"environments/prod.yaml": LOOSE_PROD, "bundles/helper/prod.json": world.signed("evil")},
    )
    result = world.ctl.reconcile_once()
    assert result.ok
    assert world.serving() == 2 and store.registry.get_active("helper", "prod").digest == world.v1
    # the bundle of the same commit was judged by the policy in force: two signatures
    newest = world.newest()
    assert newest.status == "rejected" and newest.revision == 3
    assert "needs 2 signatures" in str(newest.diagnostics)
    [held] = [p for p in result.problems if p["code"] == "policy_held"]
    assert commit[:12] in held["message"]
    assert "required_signatures 2 → 1" in held["message"]
    prod = world.policy()
    assert prod["state"] == "held" and prod["commit"] == commit
    assert prod["condition"]["status"] == "False"
    assert prod["condition"]["reason"] == "LoosenedHeld"
    assert {c["gate"] for c in prod["loosened"]} == {
        "required_signatures",
        "promotion.require_human_approval",
        "promotion.refuse_downgrade",
        "promotion.freeze",
    }
    assert prod["needs"]["signatures"] == 2 and prod["needs"]["approvals"] == 2
    [event] = audit(store, "policy.held")
    assert event.payload["environment"] == "prod" and event.payload["commit"] == commit
    assert "freeze removed: quarter close" in " ".join(event.payload["loosened"])
    # pass after pass nothing more is written and the event is not repeated
    world.clock.advance(60)
    again = world.ctl.reconcile_once(full=True)
    assert again.ok and world.serving() == 2
    assert len(audit(store, "policy.held")) == 1

    # the next commit rolls prod back to an older signed digest the same way: the
    # downgrade refusal in force holds it (and the freeze, and the approvals)
    world.push("back to v0", {"bundles/helper/prod.json": world.signed("v0", "release")})
    result = world.ctl.reconcile_once()
    assert result.ok and world.serving() == 2
    [refused] = [o for o in result.outcomes if o.action.kind.value == "refuse"]
    assert refused.action.reason == "downgrade"
    # a signature by one key over the loosening is not what prod demands
    sign_policy(world.repo, world.keys, "prod", "ci")
    world.repo.commit("one signature")
    result = world.ctl.reconcile_once()
    assert world.policy()["state"] == "held" and world.serving() == 2
    assert "has 1 (ci)" in world.policy()["message"]


def test_the_loosening_signed_and_approved_two_of_two_takes_effect_then_promotes(
    world: World,
) -> None:
    store = world.store
    world.push(
        "loosen prod",
        {"environments/prod.yaml": LOOSE_PROD, "bundles/helper/prod.json": world.signed("v2")},
    )
    digest = sign_policy(world.repo, world.keys, "prod", "ci", "release")
    commit = world.repo.commit("signed by ci and release")
    assert world.ctl.reconcile_once().ok
    prod = world.policy()
    assert prod["state"] == "held" and prod["signers"] == ["ci", "release"]
    task = prod["task"]
    assert task == policy_task_id("prod", policy_subject("prod", prod_in_force(world), digest))
    [cont] = [
        c
        for c in store.tasks.list_continuations(TaskQuery(status="pending")).items
        if c.continuation_id == task
    ]
    question = cont.requests[0]["prompt"]
    assert question.startswith("Loosen prod: required_signatures 2 → 1, ")
    assert "require_human_approval removed" in question and "freeze removed" in question
    assert cont.context["approvers"] == ["alice", "bob"] and cont.context["min_approvals"] == 2
    with pytest.raises(Forbidden):  # only the approvers in force decide
        record_promotion_decision(store, task, approver="mallory", decision="approved")
    record_promotion_decision(store, task, approver="alice", decision="approved")
    assert world.ctl.reconcile_once().ok
    assert world.policy()["state"] == "held" and world.serving() == 2
    assert "1 of 2 approvals" in world.policy()["message"]
    record_promotion_decision(store, task, approver="bob", decision="approved")
    assert [e.actor for e in audit(store, "policy.approved")] == ["bob", "alice"]

    result = world.ctl.reconcile_once()
    assert result.ok and not [p for p in result.problems if p["code"].startswith("policy_")]
    prod = world.policy()
    assert prod["state"] == "in_force" and prod["in_force"]["commit"] == commit
    assert prod["in_force"]["how"] == "approved"
    [applied] = audit(store, "policy.applied")
    assert applied.payload["signers"] == ["ci", "release"]
    assert applied.payload["approved_by"] == ["alice", "bob"]
    assert "required_signatures 2 → 1" in applied.payload["loosened"]
    # the loosened policy judges now: the one-key bundle promotes without a person
    active = store.registry.get_active("helper", "prod")
    assert active.revision > 2 and active.digest != world.v1


def test_a_rejection_by_an_approver_in_force_keeps_the_change_held(world: World) -> None:
    world.push("loosen prod", {"environments/prod.yaml": LOOSE_PROD})
    sign_policy(world.repo, world.keys, "prod", "ci", "release")
    world.repo.commit("signed")
    assert world.ctl.reconcile_once().ok
    task = world.policy()["task"]
    record_promotion_decision(world.store, task, approver="bob", decision="rejected")
    world.clock.advance(60)
    assert world.ctl.reconcile_once().ok
    assert world.policy()["state"] == "held" and "rejected by bob" in world.policy()["message"]
    assert [e.actor for e in audit(world.store, "policy.rejected")] == ["bob"]


def test_an_approved_loosening_needs_new_approvals_to_come_back(world: World) -> None:
    """Approvals decide a transition: after a tightening, the same loosened policy with the
    same signed file is held again until the approvers decide anew."""
    world.push("loosen prod", {"environments/prod.yaml": LOOSE_PROD})
    sign_policy(world.repo, world.keys, "prod", "ci", "release")
    world.repo.commit("signed")
    assert world.ctl.reconcile_once().ok
    first = world.policy()["task"]
    for who in ("alice", "bob"):
        record_promotion_decision(world.store, first, approver=who, decision="approved")
    assert world.ctl.reconcile_once().ok and world.policy()["state"] == "in_force"
    # a tightening (human approval again) applies at once, then the loosening comes back
    approval = LOOSE_PROD.replace("promotion:\n", "promotion:\n  require_human_approval: true\n")
    world.push("approval again", {"environments/prod.yaml": approval})
    assert world.ctl.reconcile_once().ok and world.policy()["state"] == "in_force"
    world.push("one key again", {"environments/prod.yaml": LOOSE_PROD})
    assert world.ctl.reconcile_once().ok
    again = world.policy()
    assert again["state"] == "held" and again["task"] not in (None, first)
    assert "0 of 2 approvals" in again["message"]


def test_a_tightening_applies_at_once_and_judges_its_own_commit(world: World) -> None:
    tighter = STRICT_PROD + "  require_evals: [{suite: smoke}]\n"
    commit = world.push(
        "tighten prod",
        {
            "environments/prod.yaml": tighter,
            "bundles/helper/prod.json": world.signed("v2", "release"),
        },
    )
    result = world.ctl.reconcile_once()
    assert result.ok and not [p for p in result.problems if p["code"].startswith("policy_")]
    assert world.policy()["in_force"] == {
        "commit": commit,
        "since": "2026-03-02T12:00:00Z",
        "how": "applied",
    }
    [event] = audit(world.store, "policy.applied")
    assert event.payload["tightened"] == ["require_evals: suite smoke added"]
    assert event.payload["loosened"] == []
    [refused] = [o for o in result.outcomes if o.action.kind.value == "refuse"]
    assert refused.action.reason == "evals_failed"  # the new gate, in the same commit
    assert world.serving() == 2

    # a force-push back to the older policy is a change like any other: a loosening
    world.repo.git("reset", "--quiet", "--hard", "HEAD~1")
    world.repo.git("push", "--quiet", "--force", "origin", "HEAD:main")
    result = world.ctl.reconcile_once()
    assert world.policy()["state"] == "held"
    assert [c["summary"] for c in world.policy()["loosened"]] == [
        "require_evals: suite smoke removed"
    ]


def test_a_floor_refuses_a_weaker_policy_whatever_signs_it(
    store: Any, keys: Keys, tmp_path: Path
) -> None:
    floors = parse_floors(
        {
            "environments": {
                "prod": {"required_signatures": 2, "promotion": {"refuse_downgrade": True}}
            }
        },
        source="floors.yaml",
    )
    world = World(store, keys, tmp_path, floors=floors)
    world.push("loosen prod", {"environments/prod.yaml": LOOSE_PROD})
    digest = sign_policy(world.repo, world.keys, "prod", "ci", "release")
    world.repo.commit("signed")
    result = world.ctl.reconcile_once()
    [below] = [p for p in result.problems if p["code"] == "policy_below_floor"]
    assert "required_signatures 2 → 1" in below["message"]
    assert (
        "refuse_downgrade removed" in below["message"]
        and "policy in force stays" in below["message"]
    )
    assert world.policy()["state"] == "below_floor"
    assert world.policy()["in_force"]["commit"] != world.repo.git("rev-parse", "HEAD")
    assert [e.payload["environment"] for e in audit(store, "policy.below_floor")] == ["prod"]
    # no one is asked to approve what the floor refuses anyway
    assert world.policy()["task"] is None
    assert not [
        c
        for c in store.tasks.list_continuations(TaskQuery(status="pending")).items
        if c.context.get("policy")
    ]
    assert digest == world.policy()["digest"]
    # what meets the floor but loosens the rest still needs prod's signatures and approvers
    meets = LOOSE_PROD.replace("required_signatures: 1", "required_signatures: 2") + (
        "  refuse_downgrade: true\n"
    )
    world.push("meet the floor", {"environments/prod.yaml": meets})
    assert world.ctl.reconcile_once().ok
    assert world.policy()["state"] == "held"


PROD_TWICE = STRICT_PROD.replace(
    "required_signatures: 2\n", "required_signatures: 2\nrequired_signatures: 1\n"
)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"remove": ("environments/prod.yaml",)}, id="deleted"),
        pytest.param({"files": {"environments/prod.yaml": PROD_TWICE}}, id="key twice"),
        pytest.param(
            {"files": {"environments/prod.yaml": "version: v1\npromotion: [\n"}}, id="malformed"
        ),
        pytest.param(
            {"files": {"environments/prod.yaml": "required_signatures: zero\n"}}, id="invalid"
        ),
    ],
)
def test_a_deleted_or_broken_policy_file_keeps_the_last_verified_policy(
    world: World, change: dict[str, Any]
) -> None:
    commit = world.push(
        "break prod",
        {**change.get("files", {}), "bundles/helper/prod.json": world.signed("evil")},
        remove=change.get("remove", ()),
    )
    result = world.ctl.reconcile_once()
    assert result.ok and world.serving() == 2
    [kept] = [p for p in result.problems if p["code"] == "policy_kept"]
    assert commit[:12] in kept["message"] and "last verified policy" in kept["message"]
    assert world.policy()["state"] == "kept"
    assert "needs 2 signatures" in str(world.newest().diagnostics)
    [event] = audit(world.store, "policy.kept")
    assert event.payload["commit"] == commit


def test_a_new_environment_with_weak_rules_cannot_take_a_bundle_prod_refused(
    world: World,
) -> None:
    store = world.store
    world.push("prod refuses it", {"bundles/helper/prod.json": world.signed("evil")})
    assert world.ctl.reconcile_once().ok and world.serving() == 2
    world.push(
        "a weak twin",
        {
            "environments/prod-eu.yaml": "version: v1\n",
            "bundles/helper/prod-eu.json": world.keys.bundle("helper", "prod-eu", spec("evil")),
        },
    )
    result = world.ctl.reconcile_once()
    assert result.ok
    assert store.registry.get_active("helper", "prod-eu") is None
    [rejected] = store.registry.list_revisions("helper", "prod-eu")
    assert rejected.status == "rejected" and "policy_not_in_force" in str(rejected.diagnostics)
    twin = world.policy("prod-eu")
    assert twin["state"] == "not_in_force" and twin["needs"]["as_for"] == "prod"
    assert twin["needs"]["signatures"] == 2 and twin["needs"]["approvers"] == ["alice", "bob"]

    # signed and approved as prod (the strictest in force) demands, it takes effect
    digest = sign_policy(world.repo, world.keys, "prod-eu", "ci", "release")
    world.repo.commit("sign the twin")
    assert world.ctl.reconcile_once().ok
    task = world.policy("prod-eu")["task"]
    assert task == policy_task_id("prod-eu", policy_subject("prod-eu", None, digest))
    for who in ("alice", "bob"):
        record_promotion_decision(store, task, approver=who, decision="approved")
    assert world.ctl.reconcile_once().ok
    assert world.policy("prod-eu")["state"] == "in_force"
    assert store.registry.get_active("helper", "prod-eu") is not None


def test_renames(world: World) -> None:
    """prod.yaml to prod.yml is the same environment, the same rules: at once. prod.yaml
    to production.yaml is prod gone (its policy stays) and a new environment (held)."""
    world.repo.git("mv", "environments/prod.yaml", "environments/prod.yml")
    world.repo.commit("yml")
    result = world.ctl.reconcile_once()
    assert result.ok and not [p for p in result.problems if p["code"].startswith("policy_")]
    assert world.policy()["state"] == "in_force"
    world.repo.git("mv", "environments/prod.yml", "environments/production.yaml")
    world.repo.git("mv", "bundles/helper/prod.json", "bundles/helper/production.json")
    world.repo.write(
        "bundles/helper/production.json", world.keys.bundle("helper", "production", spec("evil"))
    )
    world.repo.commit("rename prod")
    result = world.ctl.reconcile_once()
    codes = {p["code"] for p in result.problems}
    assert {"policy_kept", "policy_not_in_force"} <= codes
    assert world.policy()["state"] == "kept"
    assert world.policy("production")["state"] == "not_in_force"
    assert world.store.registry.get_active("helper", "production") is None


def test_a_project_config_that_loosens_an_environment_is_held_like_its_file(
    store: Any, keys: Keys, tmp_path: Path
) -> None:
    """``.kneo/config.yaml``'s ``policy_enforcement`` is part of prod's effective policy:
    deleting the block (or the file) loosens prod and waits like an edit of prod's file."""
    repo = Repo(tmp_path / "git")
    repo.write("environments/prod.yaml", STRICT_PROD)
    repo.write(
        ".kneo/config.yaml",
        "version: v1\nenvironments:\n  prod:\n"
        "    policy_enforcement: {blocked_diagnostic_codes: [W_NO_DESCRIPTION]}\n",
    )
    repo.commit("prod blocks a code")
    ctl = make_controller(store, repo, keys, store.clock, tmp_path)
    assert ctl.reconcile_once().ok
    repo.remove(".kneo/config.yaml")
    commit = repo.commit("drop the project config")
    result = ctl.reconcile_once()
    [held] = [p for p in result.problems if p["code"] == "policy_held"]
    assert commit[:12] in held["message"] and "policy_enforcement disabled" in held["message"]
    assert ctl.status()["policy"]["prod"]["state"] == "held"
