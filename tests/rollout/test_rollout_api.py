"""The rollout routes on SQLite and PostgreSQL: list (filters, pages), one rollout (steps,
where it stands, both sides' figures, verdict), and decisions by hand under the
environment's approvers (403 ``not_an_approver`` for anyone else), another project's
rollout not found, bad bodies named by field, illegal decisions a 409, never a 500."""

from __future__ import annotations

from typing import Any

from kneo.store import AuditQuery
from tests.rollout.rollout_service import Service, aborted, auth, begin, count_runs
from tests.rollout.rollout_service import service as service


def test_list_filters_and_pages(service: Service) -> None:
    store = service.store
    begin(store, "ro_a", bundle="helper", env="dev")
    begin(store, "ro_b", bundle="mailer", env="dev")
    begin(store, "ro_c", bundle="helper", env="prod")
    aborted(store, "ro_c")
    get = service.client.get
    every = get("/v1/rollouts", headers=auth("viewer"))
    assert every.status_code == 200, every.text
    assert {r["rollout_id"] for r in every.json()["rollouts"]} == {"ro_a", "ro_b", "ro_c"}
    helper = get("/v1/rollouts", params={"bundle": "helper"}, headers=auth("viewer")).json()
    assert {r["rollout_id"] for r in helper["rollouts"]} == {"ro_a", "ro_c"}
    dev = get("/v1/rollouts", params={"environment": "prod"}, headers=auth("viewer")).json()
    assert [r["rollout_id"] for r in dev["rollouts"]] == ["ro_c"]
    stopped = get("/v1/rollouts", params={"status": "aborted"}, headers=auth("viewer")).json()
    assert [r["rollout_id"] for r in stopped["rollouts"]] == ["ro_c"]
    assert stopped["rollouts"][0]["standing"].startswith("aborted")
    seen: list[str] = []
    cursor = None
    for _ in range(5):  # one a page, by cursor, every rollout once
        params: dict[str, Any] = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        page = get("/v1/rollouts", params=params, headers=auth("viewer")).json()
        seen += [r["rollout_id"] for r in page["rollouts"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == ["ro_a", "ro_b", "ro_c"]
    counted = get("/v1/rollouts", params={"limit": 1, "include": "counts"}, headers=auth("viewer"))
    assert (counted.json()["count"], counted.json()["total"]) == (1, 3)
    for bad, field in (
        ({"status": "nope"}, "status"),
        ({"cursor": "garbage"}, "cursor"),
        ({"include": "everything"}, "include"),
    ):
        answer = get("/v1/rollouts", params=bad, headers=auth("viewer"))
        assert answer.status_code in (400, 422), answer.text
        assert field in answer.text


def test_one_rollout_shows_steps_figures_and_verdict(service: Service) -> None:
    begin(service.store, "ro_1")
    count_runs(service.store, "ro_1")
    answer = service.client.get("/v1/rollouts/ro_1", headers=auth("viewer"))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["bundle"], body["environment"], body["status"], body["weight"]) == (
        "helper",
        "dev",
        "progressing",
        10,
    )
    assert [s["state"] for s in body["steps"]] == ["done", "current", "pending", "pending"]
    assert body["steps"][1]["kind"] == "analysis"
    assert "step 2 of 4" in body["standing"]
    canary, stable = body["figures"]["canary"], body["figures"]["stable"]
    assert (canary["finished"], stable["finished"]) == (6, 6)
    assert canary["rejection_rate"] == 3 / 5 and stable["rejection_rate"] == 1 / 3
    assert canary["p95_latency_ms"] is not None and canary["cost_per_run"] > 0
    assert body["approvers"] == ["alice"] and body["history"] == []


def test_decisions_under_the_approvers(service: Service) -> None:
    begin(service.store, "ro_1")
    post = service.client.post
    refused = post("/v1/rollouts/ro_1/abort", json={"reason": "no"}, headers=auth("mallory"))
    assert refused.status_code == 403 and refused.json()["error"] == "not_an_approver"
    viewer = post("/v1/rollouts/ro_1/promote", json={}, headers=auth("viewer"))
    assert viewer.status_code == 403 and viewer.json()["required_scope"] == "controller:write"

    promoted = post("/v1/rollouts/ro_1/promote", json={"full": False}, headers=auth("alice"))
    assert promoted.status_code == 200, promoted.text
    assert promoted.json()["step"] == 2  # past the analysis it stood at
    stopped = post("/v1/rollouts/ro_1/abort", json={"reason": "looks off"}, headers=auth("alice"))
    assert stopped.status_code == 200, stopped.text
    assert (stopped.json()["status"], stopped.json()["reason"]) == ("aborted", "looks off")
    again = post("/v1/rollouts/ro_1/abort", json={"reason": "twice"}, headers=auth("alice"))
    assert again.status_code == 409 and again.json()["error"] == "illegal_transition"
    retried = post("/v1/rollouts/ro_1/retry", headers=auth("alice"))
    assert retried.status_code == 200 and retried.json()["status"] == "progressing"
    full = post("/v1/rollouts/ro_1/promote", json={"full": True}, headers=auth("alice"))
    assert (full.json()["status"], full.json()["weight"]) == ("promoted", 100)
    assert [s["state"] for s in full.json()["steps"]] == ["done"] * 4
    events = service.store.audit.list_audit(AuditQuery(limit=50)).items
    kinds = {e.event_type for e in events if e.actor == "alice"}
    assert {"rollout.aborted", "rollout.retried", "rollout.promoted"} <= kinds


def test_bad_bodies_name_their_field(service: Service) -> None:
    begin(service.store, "ro_1")
    post = service.client.post
    for url, body, field in (
        ("/v1/rollouts/ro_1/abort", {}, "reason"),
        ("/v1/rollouts/ro_1/abort", {"reason": ""}, "reason"),
        ("/v1/rollouts/ro_1/promote", {"full": "maybe"}, "full"),
        ("/v1/rollouts/ro_1/promote", {"fully": True}, "fully"),
    ):
        answer = post(url, json=body, headers=auth("alice"))
        assert answer.status_code in (400, 422), (url, body, answer.text)
        assert field in answer.text, answer.text
    assert service.store.rollouts.get_rollout("ro_1").status == "progressing"


def test_another_projects_rollout_is_not_found(service: Service) -> None:
    begin(service.store, "ro_1")
    for method, url, body in (
        ("GET", "/v1/rollouts/ro_1", None),
        ("POST", "/v1/rollouts/ro_1/promote", {"full": True}),
        ("POST", "/v1/rollouts/ro_1/abort", {"reason": "mine now"}),
        ("POST", "/v1/rollouts/ro_1/retry", None),
    ):
        answer = service.client.request(method, url, json=body, headers=auth("intruder"))
        assert answer.status_code == 404 and answer.json()["error"] == "not_found", answer.text
    listed = service.client.get("/v1/rollouts", headers=auth("intruder")).json()
    assert listed["rollouts"] == []
    assert service.store.rollouts.get_rollout("ro_1").status == "progressing"
    missing = service.client.get("/v1/rollouts/ro_nothing", headers=auth("viewer"))
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
