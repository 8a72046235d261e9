"""The answers docs/openapi.json documents (kneo.service.responses) are what the service
sends: real answers of every documented operation, validated against the committed document
with jsonschema (JSON Schema 2020-12, OpenAPI 3.1's dialect)."""

from __future__ import annotations

import json
from typing import Any

from failing_steps import FAILING_SPEC
from jsonschema import Draft202012Validator
from svc_helpers import ROOT, auth_env, headers

from kneo.service.responses import RESPONSES
from kneo.service.responses_platform import PLATFORM_RESPONSES

SMOKE = "examples/smoke_human_workflow.yaml"
DOC = json.loads((ROOT / "docs" / "openapi.json").read_text())


def _operation(operation_id: str) -> dict[str, Any]:
    for path in DOC["paths"].values():
        for operation in path.values():
            if operation["operationId"] == operation_id:
                return dict(operation)
    raise AssertionError(f"{operation_id} is not in docs/openapi.json")


def check(operation_id: str, response: Any) -> dict[str, Any]:
    """``response``'s JSON, after validating it against what the document says it is."""
    answer = _operation(operation_id)["responses"][str(response.status_code)]
    schema = answer["content"]["application/json"]["schema"]
    validator = Draft202012Validator({**schema, "components": DOC["components"]})
    body = response.json()
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(body)
    ]
    assert not errors, f"{operation_id} {response.status_code}: {errors}"
    return dict(body)


def test_every_documented_answer_matches_the_service(make_client) -> None:
    """One journey through every operation of kneo.service.responses, run, queued, failed,
    paused, resumed, cancelled and continued."""
    client = make_client(auth_env())
    operator, reviewer = headers("operator"), headers("reviewer")
    seen: set[str] = set()

    def call(operation_id: str, method: str, url: str, role: dict[str, str], **kw: Any) -> Any:
        seen.add(operation_id)
        return check(operation_id, client.request(method, url, headers=role, **kw))

    body = {"spec_path": SMOKE, "input": "hello"}
    run = call("runs-create", "POST", "/v1/runs", operator, json=body)
    assert run["status"] == "paused" and run["metadata"]["pending_human_request"]
    queued = call("runs-create", "POST", "/v1/runs", operator, json={**body, "async_mode": True})
    assert queued["status"] == "queued"
    call("specs-run", "POST", "/v1/specs/run", operator, json=body)
    call("runs-get", "GET", f"/v1/runs/{run['run_id']}", operator)
    call("runs-get", "GET", f"/v1/runs/{run['run_id']}?include=conversation", operator)
    call("runs-list", "GET", "/v1/runs?include=counts", operator)
    listed = call("human-tasks-list", "GET", "/v1/human-tasks?include=counts", reviewer)
    assert listed["tasks"]
    call("human-tasks-list", "GET", "/v1/human-tasks?q=hello", reviewer)
    cid = run["continuation_id"]
    task = call("human-tasks-get", "GET", f"/v1/human-tasks/{cid}", reviewer)
    tool = call("runs-create", "POST", "/v1/runs", operator, json={
        "spec_path": "examples/hitl_tool_context.yaml", "input": "release notes"})  # fmt: skip
    url = f"/v1/human-tasks/{tool['continuation_id']}?include=context"
    assert call("human-tasks-get", "GET", url, reviewer)["context"]["conversations"]
    decision = {"request_id": task["requests"][0]["request_id"], "decision": "approved"}
    done = call(
        "human-tasks-resume", "POST", f"/v1/human-tasks/{cid}/resume", reviewer, json=decision
    )
    assert done["status"] == "succeeded"
    other = call("runs-create", "POST", "/v1/runs", operator, json=body)
    decisions = {
        "decisions": [
            {**decision, "request_id": other["metadata"]["pending_human_request"]["request_id"]}
        ]
    }
    decided = call(
        "human-tasks-decide",
        "POST",
        f"/v1/human-tasks/{other['continuation_id']}/decisions",
        reviewer,
        json=decisions,
    )
    assert decided["status"] == "succeeded"
    call("runs-cancel", "POST", f"/v1/runs/{queued['run_id']}/cancel", operator)
    failed = call(
        "runs-create",
        "POST",
        "/v1/runs",
        operator,
        json={**body, "spec": FAILING_SPEC, "spec_path": None},
    )
    assert failed["status"] == "failed" and failed["metadata"]["error"]
    call("runs-continue", "POST", f"/v1/runs/{failed['run_id']}/continue", operator, json={})
    graph = call("runs-graph", "GET", f"/v1/runs/{run['run_id']}/graph", operator)
    assert graph["visited"] and graph["nodes"]
    call("specs-graph", "POST", "/v1/specs/graph", operator, json={"spec_path": SMOKE})
    preview = {"enabled": True, "require_guardrails": True}
    url = "/v1/policies/environment/qa/preview"
    assert call("environment-policies-preview", "POST", url, operator, json=preview)["changes"]
    grouped = {**body, "spec": FAILING_SPEC, "spec_path": None, "session_id": "sess_1"}
    call("runs-create", "POST", "/v1/runs", operator, json=grouped)
    assert call("sessions-get", "GET", "/v1/sessions/sess_1", operator)["runs"]
    assert call("skills-list", "GET", "/v1/skills", operator)["skills"]  # the checkout's own
    assert seen == set(RESPONSES)


def test_every_platform_answer_matches_the_service(make_client) -> None:
    """The answers of kneo.service.responses_platform a one-box service gives without a
    controller (the registry's and the controller's: tests/controller/
    test_projects_promotion_console.py), each validated against the committed document."""
    client = make_client(auth_env())
    admin, operator = headers("admin"), headers("operator")
    seen: set[str] = set()

    def call(operation_id: str, method: str, url: str, role: dict[str, str], **kw: Any) -> Any:
        seen.add(operation_id)
        return check(operation_id, client.request(method, url, headers=role, **kw))

    for operation_id, path in (
        ("health-check", "/healthz"), ("health-live", "/livez"), ("health-ready", "/readyz"),
        ("service-version", "/v1/version"),
    ):  # fmt: skip
        assert call(operation_id, "GET", path, operator)["ok" if "z" in path else "version"]
    run = call("runs-create", "POST", "/v1/runs", operator, json={"spec_path": SMOKE, "input": "x"})
    rid = run["run_id"]
    events = call("audit-events-list", "GET", "/v1/audit-events?limit=1", admin)["events"]
    call("audit-events-get", "GET", f"/v1/audit-events/{events[0]['id']}", admin)
    call("notifications-list", "GET", "/v1/notifications", admin)
    call("notifications-retry", "POST", "/v1/notifications/retry", admin, json={})
    call("environment-policies-replace", "PUT", "/v1/policies/environment/qa", admin, json={})
    call("environment-policies-get", "GET", "/v1/policies/environment/qa", admin)
    assert call("environment-policies-list", "GET", "/v1/policies/environment", admin)["count"]
    call("runs-trace", "GET", f"/v1/runs/{rid}/trace", operator)
    call("runs-checkpoints-list", "GET", f"/v1/runs/{rid}/checkpoints", operator)
    diff = f"/v1/runs/{rid}/checkpoints/diff?from_sequence=1&to_sequence=2"
    call("runs-checkpoints-diff", "GET", diff, operator)
    call("runs-recovery", "GET", f"/v1/runs/{rid}/recovery", operator)
    call("runs-replay", "GET", f"/v1/runs/{rid}/replay", operator)
    call("runs-policy-report", "GET", f"/v1/runs/{rid}/policy-report", operator)
    for operation_id in ("specs-policy-report", "specs-validate", "specs-compile", "specs-explain"):
        url = "/v1/specs/" + operation_id.removeprefix("specs-")
        call(operation_id, "POST", url, operator, json={"spec_path": SMOKE})
    call("security-credentials-get", "GET", "/v1/security/credentials", admin)
    call("projects-list", "GET", "/v1/projects", admin)
    call("projects-create", "POST", "/v1/projects", admin, json={"name": "team-x"})
    call("projects-get", "GET", "/v1/projects/team-x", admin)
    call("projects-replace", "PUT", "/v1/projects/team-x", admin, json={"definition": {}})
    call("projects-archive", "DELETE", "/v1/projects/team-x", admin)
    call("controller-status", "GET", "/v1/controller/status", operator)
    call("registry-bundles-list", "GET", "/v1/registry/bundles?include=counts", operator)
    digest = "sha256:" + "a" * 64
    block = {"digest": digest, "reason": "a test"}
    call(
        "registry-blocked-digests-block", "POST", "/v1/registry/blocked-digests", admin, json=block
    )
    assert call("registry-blocked-digests-list", "GET", "/v1/registry/blocked-digests", admin)[
        "blocked"
    ]
    unblock = f"/v1/registry/blocked-digests/{digest}"
    call("registry-blocked-digests-unblock", "DELETE", unblock, admin)
    _rollouts(call, client, operator)
    assert seen - {"runs-create"} == set(PLATFORM_RESPONSES) - CONTROLLER_ONLY


def _rollouts(call: Any, client: Any, operator: dict[str, str]) -> None:
    """A rollout with figures and a history, read, promoted, aborted and retried."""
    from kneo.controller.rollout_pass import step_rollouts

    store = client.app.state.manager.store
    with store.transaction() as tx:
        tx.begin_rollout(
            "ro_schema", bundle_name="demo", environment="qa", stable_revision=1,
            canary_revision=2, canary_digest=None, commit=None, weight=10, step=1,
            policy={"rollout": {"steps": [
                {"set_weight": 10}, {"analysis": {"min_runs": 2}}, {"pause": {}},
                {"set_weight": 100},
            ]}},
        )  # fmt: skip
        tx.note_rollout({"id": "ro_schema", "track": "canary"}, started=True)
        tx.note_rollout(
            {"id": "ro_schema", "track": "canary"}, status="succeeded", latency_ms=50, cost=0.1
        )
    step_rollouts(store, store.clock.now())  # waits: a point of history and a verdict
    assert call("rollouts-list", "GET", "/v1/rollouts", operator)["count"] == 1
    assert call("rollouts-get", "GET", "/v1/rollouts/ro_schema", operator)["history"]
    promoted = call("rollouts-promote", "POST", "/v1/rollouts/ro_schema/promote", operator, json={})
    assert promoted["status"] == "paused"
    abort = {"reason": "schema"}
    stopped = call("rollouts-abort", "POST", "/v1/rollouts/ro_schema/abort", operator, json=abort)
    assert stopped["status"] == "aborted"
    retried = call("rollouts-retry", "POST", "/v1/rollouts/ro_schema/retry", operator)
    assert retried["status"] == "progressing"


#: Answered only where a controller has applied bundles (tests/controller).
CONTROLLER_ONLY = {
    "registry-bundles-get", "registry-bundles-diff", "registry-bundles-graph",
    "registry-bundles-pin", "registry-bundles-unpin", "registry-bundles-suspend",
    "registry-bundles-resume", "registry-bundles-rollback", "controller-requests-get",
    "controller-reconcile", "controller-plan", "controller-webhook", "schedules-list",
    "schedules-get", "schedules-pause", "schedules-resume", "schedules-trigger",
    "triggers-deliver",
}  # fmt: skip


def test_a_drifted_answer_is_caught() -> None:
    """The check can fail: an answer missing a documented field, or with a wrong type."""

    class Answer:
        status_code = 200

        def __init__(self, body: dict[str, Any]) -> None:
            self.body = body

        def json(self) -> dict[str, Any]:
            return self.body

    good = {"runs": [], "count": 0, "total": None, "limit": 20, "offset": 0, "next_cursor": None}
    check("runs-list", Answer(good))
    for bad in ({**good, "count": "0"}, {k: v for k, v in good.items() if k != "runs"}):
        try:
            check("runs-list", Answer(bad))
        except AssertionError:
            continue
        raise AssertionError(f"{bad} passed")
