"""A held policy change reaches the approvers it waits for: the controller's ``policy.held``
audit event (one commit loosening prod, on a real Git repository) writes a ``policy.held``
notification naming the approval task the controller opened once the change is signed, and a dispatcher delivers each
approver in force a decision link to that task (issue 53's hold, issue 72's reach)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.controller.gitops_fixtures import Keys, sign_policy
from tests.controller.test_approval_notifications import LINKS, delivered
from tests.security import test_doors_policy_ratchet as ratchet
from tests.security.test_doors_policy_ratchet import LOOSE_PROD, World

store = ratchet.store  # the ratchet tests' fixtures: a store on SQLite and PostgreSQL, keys
keys = ratchet.keys


@pytest.fixture
def world(store: Any, keys: Keys, tmp_path: Path) -> World:
    return World(store, keys, tmp_path)


def test_a_held_loosening_notifies_its_approvers_with_their_links(world: World) -> None:
    world.push("loosen prod", {"environments/prod.yaml": LOOSE_PROD})
    sign_policy(world.repo, world.keys, "prod", "ci", "release")
    world.repo.commit("signed: now it waits for two approvals")
    assert world.ctl.reconcile_once().ok
    cid = world.policy()["task"]
    assert cid and world.store.tasks.get_continuation(cid).status == "pending"
    body = delivered(world.store, "policy.held")
    assert body["continuation_id"] == cid
    assert body["severity"] == "warning" and "environment prod is held" in body["summary"]
    assert body["link"] == f"https://kneo.example/ui/promotions/{cid}"
    assert set(body["decision_links"]) == {"alice", "bob"}
    claim = LINKS.read(body["decision_links"]["alice"].rsplit("/", 1)[1])
    assert (claim.continuation_id, claim.recipient) == (cid, "alice")
