"""The committed OpenAPI document matches the app; planted secrets never leave the service."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

from svc_helpers import KEYS, ROOT, auth_env, headers

from kneo.store import AuditQuery

SMOKE = "examples/smoke_human_workflow.yaml"


def test_openapi_document_has_not_drifted() -> None:
    """Fails when routes or models change without `python docs/script/generate_openapi.py`."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "script" / "generate_openapi.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_openapi_documents_errors_and_security() -> None:
    doc = json.loads((ROOT / "docs" / "openapi.json").read_text())
    assert "Error" in doc["components"]["schemas"]
    assert {"bearer", "apiKey"} <= set(doc["components"]["securitySchemes"])
    create = doc["paths"]["/v1/runs"]["post"]
    assert {"401", "403", "409", "413", "422"} <= set(create["responses"])


PLANTED = {
    "email": "alice.secret@example.com",
    "ssn": "123-45-6789",
    "bearer": "Bearer abcdefSECRETtoken123",
    "password": "password=hunter2secret",
    "sk": "sk-plantedOPENAIkey0123456789",
}


def test_planted_secrets_never_leave(make_client, caplog, request_log) -> None:
    """Input, human content and headers carrying secrets: every response, log line, trace,
    checkpoint and audit event is searched."""
    client = make_client(auth_env())
    caplog.set_level(logging.DEBUG)
    text = " ".join(PLANTED.values())
    outputs: list[str] = []
    r = client.post(
        "/v1/runs",
        headers={**headers("operator"), "X-Request-ID": "plant-1"},
        json={
            "input": f"draft for {text}",
            "spec_path": SMOKE,
            "metadata": {"note": text, "api_key": "metadata-secret-value"},
        },
    )
    outputs.append(r.text)
    run = r.json()
    cid, rid = run["continuation_id"], run["run_id"]
    req = run["metadata"]["pending_human_request"]["request_id"]
    r = client.post(
        f"/v1/human-tasks/{cid}/resume",
        headers=headers("reviewer"),
        json={"request_id": req, "decision": "approved", "content": text},
    )
    outputs.append(r.text)
    for path in (
        f"/v1/runs/{rid}",
        f"/v1/runs/{rid}/trace",
        f"/v1/runs/{rid}/checkpoints?include_payload=true",
        f"/v1/runs/{rid}/replay",
        f"/v1/runs/{rid}/checkpoints/diff",
        "/v1/audit-events",
        "/v1/runs",
        f"/v1/human-tasks/{cid}",
        "/v1/security/credentials",
    ):
        outputs.append(client.get(path, headers=headers("operator")).text)
    outputs.append(
        client.get("/v1/runs", headers={"Authorization": "Bearer " + KEYS["viewer"] + "x"}).text
    )
    outputs.extend(rec.getMessage() for rec in [*caplog.records, *request_log])
    blob = "\n".join(outputs)
    for name, value in PLANTED.items():
        secret = value.split("=")[-1].split(" ")[-1]
        assert secret not in blob, f"{name} leaked"
    assert "metadata-secret-value" not in blob
    for key in KEYS.values():
        assert key not in blob


def test_stored_checkpoints_and_audit_are_redacted(make_client) -> None:
    """What the store keeps (checkpoints, trace, audit) holds no planted secret either."""
    client = make_client()
    text = " ".join(PLANTED.values())
    run = client.post("/v1/runs", json={"input": f"draft {text}", "spec_path": SMOKE}).json()
    store = client.app.state.manager.store
    stored = [cp.payload for cp in store.runs.list_checkpoints(run["run_id"]).items]
    stored += [e.payload for e in store.runs.list_trace(run["run_id"]).items]
    stored += [e.payload for e in store.audit.list_audit(AuditQuery(run_id=run["run_id"])).items]
    blob = json.dumps(stored)
    for name, value in PLANTED.items():
        assert value.split("=")[-1].split(" ")[-1] not in blob, f"{name} stored unredacted"


def test_service_api_doc_lists_every_route() -> None:
    """docs/service_api.md's matrix names every /v1 route and its scope."""
    from kneo.service import create_app
    from kneo.service.auth import route_scopes
    from kneo.settings import Settings

    doc = (ROOT / "docs" / "service_api.md").read_text()
    app = create_app(False, settings=Settings())
    for method, path, scope in route_scopes(app):
        if path.startswith("/v1/"):
            assert f"| {method} | `{path}` | {scope or 'none'} |" in doc, (method, path)
