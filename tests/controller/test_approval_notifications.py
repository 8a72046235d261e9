"""Every approval kind reaches people: a freeze override and a rollback waiting for
approvers, opened by a real controller on a real Git repository, each write their event to
the outbox in the same transaction (``promotion.override_requested``,
``rollback.awaiting_approval``), and a dispatcher delivers each approver a decision link
that decides as them; a held policy change and an environment's policy change are events
too, and a receiver subscribing to ``policy.*`` loads."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from kneo.clock import ManualClock
from kneo.controller import operations
from kneo.controller.promotion import record_promotion_decision, task_id
from kneo.platform.decision_links import DecisionLinks
from kneo.platform.notifications import Dispatcher, Receiver, load_receivers
from kneo.settings import Settings
from tests.controller.gitops_fixtures import Keys, Repo, make_controller, spec
from tests.notifications.receiver import Receiver as Hook

FROZEN = """version: v1
promotion:
  approvers: [alice, bob]
  min_approvals: 1
  freeze:
    - {reason: year-end close, from: 2026-03-02T00:00:00Z, until: 2026-03-09T00:00:00Z}
"""
APPROVED = (
    "version: v1\npromotion:\n  require_human_approval: true\n"
    "  approvers: [alice, bob]\n  min_approvals: 1\n"
)
LINKS = DecisionLinks("console-secret-for-links-0123456789", 3600, "https://kneo.example")


def release(repo: Repo, keys: Keys, prompt: str) -> None:
    repo.write("bundles/helper/live.json", keys.bundle("helper", "live", spec(prompt)))
    repo.commit(prompt)


def delivered(store: Any, event_type: str) -> dict[str, Any]:
    """The ``event_type`` message a dispatcher delivers to one approver's own endpoint."""
    hook = Hook().start()
    receiver = Receiver("mine", "webhook", hook.url, events=(event_type,), personal_links=True)
    settings = Settings.from_env({})
    dispatcher = Dispatcher(
        store, [receiver], settings.notifications, owner="t", base_url="https://kneo.example",
        links=LINKS,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 15
        while not hook.bodies():
            dispatcher.run_once()
            dispatcher.wait_idle(5)
            assert time.monotonic() < deadline, f"no {event_type} delivery"
    finally:
        dispatcher.stop()
        hook.stop()
    return hook.bodies()[0]


def test_a_freeze_override_reaches_each_approver(
    store: Any, repo: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    from kneo.controller.promotion import override_task_id

    repo.write("environments/live.yaml", FROZEN)
    ctl = make_controller(store, repo, keys, clock, tmp_path)
    release(repo, keys, "v1")
    assert ctl.reconcile_once().ok
    clock.advance(86400 + 3600)  # inside the freeze
    release(repo, keys, "v2")
    result = ctl.reconcile_once()
    cid = override_task_id("helper", "live", result.outcomes[0].action.digest)
    body = delivered(store, "promotion.override_requested")
    assert body["continuation_id"] == cid and body["severity"] == "warning"
    assert "needs a freeze override" in body["summary"]
    assert body["link"] == f"https://kneo.example/ui/promotions/{cid}"
    assert set(body["decision_links"]) == {"alice", "bob"}
    claim = LINKS.read(body["decision_links"]["bob"].rsplit("/", 1)[1])
    assert (claim.continuation_id, claim.recipient) == (cid, "bob")


def test_a_rollback_waiting_for_approval_reaches_each_approver(
    store: Any, repo: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    repo.write("environments/live.yaml", APPROVED)
    ctl = make_controller(store, repo, keys, clock, tmp_path)
    for prompt in ("v1", "v2"):
        release(repo, keys, prompt)
        assert ctl.reconcile_once().ok
        digest = store.registry.list_revisions("helper", "live")[-1].digest
        record_promotion_decision(
            store, task_id("helper", "live", digest), approver="alice", decision="approved"
        )
        assert ctl.reconcile_once().ok
    active = store.registry.get_active("helper", "live")
    asked = operations.rollback(store, "helper", "live", to=active.revision - 1, actor="dave")
    body = delivered(store, "rollback.awaiting_approval")
    assert body["continuation_id"] == asked["continuation_id"]
    assert f"back to revision {active.revision - 1}" in body["summary"]
    assert set(body["decision_links"]) == {"alice", "bob"}


def test_policy_events_are_notified_and_policy_star_loads(store: Any) -> None:
    with store.transaction() as tx:
        tx.add_audit("policy.held", actor="controller", payload={"environment": "prod"})
    body = delivered(store, "policy.held")
    assert body["summary"].startswith("a policy change of environment prod is held")
    assert body["link"] == "https://kneo.example/ui/registry"
    settings = Settings.from_env(
        {"KNEO_SERV_NOTIFICATIONS_RECEIVERS": '[{"name": "p", "url": "https://h.example", '
         '"events": ["policy.*"]}]'}
    )  # fmt: skip
    [receiver] = load_receivers(settings)
    assert receiver.wants_type("policy.held") and receiver.wants_type("policy.changed")
