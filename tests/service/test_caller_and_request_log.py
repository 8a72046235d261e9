"""The run routes' single caller dependency and the request log's redaction prefilter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from svc_helpers import auth_env, headers

from kneo.service import create_app, dependencies
from kneo.service.auth import route_scopes
from kneo.settings import Settings

LOGGER = "kneo_serv.service"
SECRET = "sk-plantedOPENAIkey0123456789"


@pytest.mark.parametrize("path", ["/v1/runs", "/v1/specs/run"])
def test_caller_dependency_authorizes_before_it_needs_a_manager(
    path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """401 and 403 come first; only an authorized caller learns that no manager is wired."""
    monkeypatch.setattr(dependencies, "_manager", None)
    environ = {"KNEO_SERV_PROFILES_PATH": str(tmp_path / "p.json"), **auth_env()}
    app = create_app(False, settings=Settings.from_env(environ), start_worker=False)
    body = {"input": "hi", "spec_path": "examples/none.yaml"}
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.post(path, json=body).status_code == 401
        r = client.post(path, json=body, headers=headers("viewer"))
        assert r.status_code == 403 and r.json()["required_scope"] == "runs:write"
        r = client.post(path, json=body, headers=headers("operator"))
        assert r.status_code == 503 and r.json()["error"] == "not_ready"
    assert ("POST", path, "runs:write") in route_scopes(app)


def test_request_log_redacts_a_secret_in_the_path(make_client, request_log) -> None:
    """The prefilter sends a record with a secret-looking value through ``redact``."""
    client = make_client(auth_env())
    r = client.get(f"/v1/runs/{SECRET}", headers={**headers("viewer"), "X-Request-ID": "leak-1"})
    assert r.status_code == 404
    mine = [rec for rec in request_log if "leak-1" in rec.getMessage()]
    assert len(mine) == 1
    record = json.loads(mine[0].getMessage())
    assert record["path"].startswith("/v1/runs/") and SECRET not in record["path"]
    assert record["run_id"] != SECRET and record["status"] == 404
    assert SECRET not in json.dumps(mine[0].kneo)  # type: ignore[attr-defined]
