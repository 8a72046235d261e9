"""Plan requests (``POST /v1/controller/plan``) and reconcile requests share one queue: a
leader's pass takes the reconcile kinds, its dry run the plans, never one for the other (a
plan served by a pass that applied would have written what it only had to show)."""

from __future__ import annotations

from typing import Any

from kneo.store.coordination.controller_requests import PLAN


def test_a_pass_and_a_dry_run_take_their_own_requests(store: Any) -> None:
    reconcile = store.controller.queue_controller_request("main", "reconcile", actor="alice")
    webhook = store.controller.queue_controller_request("main", "webhook", actor="webhook")
    plan = store.controller.queue_controller_request("main", PLAN, actor="bob")
    assert store.controller.controller_request_counts("main")["queued"] == 3
    assert store.controller.take_controller_requests("main", "leader-1") == [
        reconcile.id,
        webhook.id,
    ]
    assert store.controller.take_controller_requests("main", "leader-1", plans=True) == [plan.id]
    assert store.controller.take_controller_requests("main", "leader-1") == []
    # a leader that died with a plan running: the next one serves it, as a plan again
    assert store.controller.take_controller_requests("main", "leader-2") == [
        reconcile.id,
        webhook.id,
    ]
    assert store.controller.take_controller_requests("main", "leader-2", plans=True) == [plan.id]
    store.controller.finish_controller_requests("main", [plan.id], {"dry_run": True})
    assert store.controller.get_controller_request(plan.id).result == {"dry_run": True}
    assert store.controller.get_controller_request(reconcile.id).status == "running"
