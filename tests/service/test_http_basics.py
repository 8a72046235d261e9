"""Envelope, limits, request ids and logs, health, paging; no platform runs needed."""

from __future__ import annotations

import json

import pytest
from svc_helpers import KEYS, auth_env, headers

LOGGER = "kneo_serv.service"


def test_unknown_route_and_method_are_envelopes(make_client) -> None:
    client = make_client()
    r = client.get("/v1/nope")
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    r = client.delete("/v1/audit-events")
    assert r.status_code == 405 and r.json()["error"] == "method_not_allowed"


@pytest.mark.parametrize(
    ("method", "path", "meant"),
    [
        # the reference's word for a paused run's task
        (
            "post",
            "/v1/continuations/cont_1/resume",
            "POST /v1/human-tasks/{continuation_id}/resume",
        ),
        ("get", "/v1/human_tasks", "GET /v1/human-tasks"),
        ("get", "/v1/run", "GET /v1/runs"),
        ("get", "/v1/runs/run_1/trac", "GET /v1/runs/{run_id}/trace"),
        ("get", "/v1/audit-event", "GET /v1/audit-events"),
        ("get", "/v1/nope", None),
        ("get", "/v1/runs/" + "x" * 300 + "/trac", None),  # too long to be a misspelling
    ],
)
def test_an_unknown_route_names_the_one_meant(
    make_client, method: str, path: str, meant: str | None
) -> None:
    r = getattr(make_client(), method)(path)
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    said = f"No route for {method.upper()} {path}"
    assert r.json()["message"] == (f"{said}; did you mean {meant}?" if meant else said)


def test_declared_oversized_body_is_refused_before_reading(make_client) -> None:
    """Content-Length above KNEO_SERV_MAX_BODY_BYTES: 413 without touching the route."""
    client = make_client({"KNEO_SERV_MAX_BODY_BYTES": "100"})
    r = client.put(
        "/v1/policies/environment/dev",
        content=b"{" + b" " * 200 + b"}",
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 413
    assert r.json()["error"] == "payload_too_large"


def test_streamed_oversized_body_is_refused_while_streaming(make_client) -> None:
    """A chunked body without Content-Length is counted as it arrives."""
    client = make_client({"KNEO_SERV_MAX_BODY_BYTES": "100"})
    sent = []

    def chunks():
        for _ in range(50):
            sent.append(1)
            yield b" " * 40

    r = client.put(
        "/v1/policies/environment/dev",
        content=chunks(),
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 413 and r.json()["error"] == "payload_too_large"


def test_strict_models_reject_unknown_fields(make_client) -> None:
    client = make_client()
    r = client.put("/v1/policies/environment/prod", json={"enabled": True, "surprise": 1})
    assert r.status_code == 422
    body = r.json()
    assert body["error"] == "validation_error" and "surprise" in json.dumps(body["details"])


def test_request_id_is_accepted_generated_and_logged(make_client, request_log) -> None:
    """One JSON record per request on kneo_serv.service; X-Request-ID echoed or generated."""
    client = make_client(auth_env())
    r = client.get("/v1/audit-events", headers={**headers("viewer"), "X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    r2 = client.get("/livez", headers={"X-Request-ID": "bad id with spaces"})
    assert (
        r2.headers["x-request-id"] != "bad id with spaces" and len(r2.headers["x-request-id"]) == 32
    )
    records = [json.loads(rec.getMessage()) for rec in request_log]
    first = next(rec for rec in records if rec["request_id"] == "abc-123")
    assert first["event"] == "http_request" and first["method"] == "GET"
    assert first["path"] == "/v1/audit-events" and first["status"] == 200
    assert first["actor"] == "viewer" and "duration_ms" in first and "client" in first
    assert not any(KEYS["viewer"] in rec.getMessage() for rec in request_log)


def test_request_logs_can_be_disabled(make_client, request_log) -> None:
    client = make_client({"KNEO_SERV_REQUEST_LOGS": "false"})
    client.get("/livez")
    client.get("/v1/audit-events")
    assert request_log == []


def test_health_endpoints(make_client) -> None:
    client = make_client(auth_env())
    assert client.get("/livez").json() == {"ok": True, "metadata": {}}
    assert client.get("/healthz").json()["ok"] is True
    r = client.get("/readyz")
    assert r.status_code == 200, r.text
    checks = r.json()["metadata"]["checks"]
    assert set(checks) == {
        "run_state_store",
        "continuation_store",
        "queue",
        "runtime_registry",
        "tool_registry",
        "providers",
        "mcp",
    }
    assert (
        checks["runtime_registry"]["count"] >= 2 and "native" in checks["runtime_registry"]["names"]
    )


def test_readyz_names_the_failing_check_without_secret_values(make_client, monkeypatch) -> None:
    """A configured provider secret that is missing: 503 not_ready naming `providers`."""
    client = make_client({"KNEO_SERV_HEALTH_PROVIDERS": "KNEO_TEST_MISSING_KEY"})
    r = client.get("/readyz")
    assert r.status_code == 503
    body = r.json()
    assert body["error"] == "not_ready" and body["failed_checks"] == ["providers"]
    assert "providers" in body["message"]
    assert body["metadata"]["checks"]["providers"]["missing"] == ["KNEO_TEST_MISSING_KEY"]


def test_readyz_checks_providers_by_name_and_mcp_secrets(make_client) -> None:
    """Provider names (the reference's form) map to their variables through the secret
    mappings, ``google-adk`` and ``openai-agents`` included; MCP secrets are checked too."""
    planted = "sk-planted-health-value"
    client = make_client(
        {
            "KNEO_SERV_HEALTH_PROVIDERS": "openai,openai-agents,google-adk",
            "KNEO_SERV_HEALTH_MCP_SECRETS": "KNEO_TEST_MCP_TOKEN",
            "OPENAI_API_KEY": planted,
        }
    )
    body = client.get("/readyz").json()
    checks = body["metadata"]["checks"]
    assert checks["providers"]["missing"] == ["google-adk"]
    assert "google-adk (GOOGLE_API_KEY)" in checks["providers"]["message"]
    assert checks["mcp"]["missing"] == ["KNEO_TEST_MCP_TOKEN"]
    assert body["failed_checks"] == ["providers", "mcp"]
    assert planted not in json.dumps(body)
    ready = make_client(
        {
            "KNEO_SERV_HEALTH_PROVIDERS": "openai-agents",
            "KNEO_SERV_HEALTH_MCP_SECRETS": "KNEO_TEST_MCP_TOKEN",
            "OPENAI_API_KEY": planted,
            "KNEO_TEST_MCP_TOKEN": "token",
        }
    )
    assert ready.get("/readyz").status_code == 200


def test_readyz_reports_a_broken_store(make_client) -> None:
    client = make_client()
    manager = client.app.state.manager
    original = manager.store.ping

    def broken() -> None:
        raise RuntimeError("connection to postgresql://kneo:hunter2@db/kneo refused")

    manager.store.ping = broken
    try:
        r = client.get("/readyz")
    finally:
        manager.store.ping = original
    assert r.status_code == 503
    assert {"run_state_store", "continuation_store", "queue"} <= set(r.json()["failed_checks"])
    assert "hunter2" not in r.text


@pytest.mark.parametrize(
    "params, code",
    [
        ({"limit": 0}, 422),
        ({"offset": -1}, 400),
        ({"offset": 2**63}, 400),
        ({"limit": 5000}, 200),
    ],
)
def test_audit_paging_params(make_client, params, code) -> None:
    client = make_client()
    r = client.get("/v1/audit-events", params=params)
    assert r.status_code == code
    if code == 200:
        assert r.json()["limit"] == 100  # capped at KNEO_SERV_MAX_LIST_ITEMS


def test_environment_policies_put_get_list_and_audit(make_client) -> None:
    """PUT stores the policy, returns previous_policy, and audits policy.changed."""
    client = make_client(auth_env())
    op = headers("operator")
    assert client.get("/v1/policies/environment/prod", headers=op).status_code == 404
    first = client.put(
        "/v1/policies/environment/prod", headers=op, json={"require_tool_permissions": True}
    )
    assert first.status_code == 200 and first.json()["previous_policy"] is None
    second = client.put(
        "/v1/policies/environment/prod",
        headers=op,
        json={
            "require_tool_permissions": True,
            "deny_unrestricted_tools": True,
            "blocked_diagnostic_codes": ["E_UNSAFE_TOOL_IMPORT"],
        },
    )
    body = second.json()
    assert body["previous_policy"]["deny_unrestricted_tools"] is False
    assert body["policy"]["deny_unrestricted_tools"] is True
    got = client.get("/v1/policies/environment/prod", headers=headers("operator")).json()
    assert got["policy"] == body["policy"]
    listed = client.get("/v1/policies/environment", headers=op).json()
    assert list(listed["policies"]) == ["prod"]
    events = client.get(
        "/v1/audit-events", params={"event_type": "policy.changed"}, headers=op
    ).json()["events"]
    assert len(events) == 2 and events[0]["actor"] == "operator"
    assert events[0]["payload"]["changed_fields"] == [
        "blocked_diagnostic_codes",
        "deny_unrestricted_tools",
    ]


def test_credential_inventory_is_redacted_and_audited(make_client, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-planted-secret-value-123456")
    env = {**auth_env(), "OPENAI_API_KEY": "sk-planted-secret-value-123456"}
    client = make_client(env)
    r = client.get("/v1/security/credentials", headers=headers("operator"))
    assert r.status_code == 200
    inventory = r.json()["inventory"]
    assert inventory["providers"]["openai"] == {
        "name": "provider:openai",
        "env_var": "OPENAI_API_KEY",
        "present": True,
        "value": "[REDACTED]",
    }
    assert inventory["service"]["operator"]["present"] is True
    text = r.text
    for secret in ["sk-planted-secret-value-123456", *KEYS.values()]:
        assert secret not in text
    events = client.get(
        "/v1/audit-events",
        headers=headers("operator"),
        params={"event_type": "credential.inventory_accessed"},
    ).json()["events"]
    assert events[0]["actor"] == "operator" and events[0]["payload"]["present_count"] >= 1
    assert "sk-planted" not in json.dumps(events)
