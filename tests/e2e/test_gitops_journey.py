"""The GitOps journey through a real ``kneo service serve`` process.

The service reads the ``controller:`` block of the project's ``.kneo/config.yaml`` and runs
the controller next to the API. A signed bundle is committed to a real Git repository and
pushed to a bare ``file://`` remote; a GitHub-style push webhook with a valid
``X-Hub-Signature-256`` makes it active within a second; it then runs with
``{"bundle": ...}``. A spec-path run in an environment that requires approved bundles is
refused with 403 ``bundle_not_approved``, and a bad webhook signature is 401.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "controller"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "service"))

from gitops_fixtures import Keys, Repo
from svc_helpers import LiveServer

ADMIN = "admin-secret-token-gitops"
WEBHOOK_SECRET = "webhook-secret-value-0123"
AGENT = {
    "version": "v1",
    "agent": {
        "name": "helper",
        "system_prompt": "Answer briefly.",
        "model": {"provider": "dummy", "name": "dummy", "script": [{"text": "hello from r1"}]},
    },
}


def _sign(body: bytes, secret: str = WEBHOOK_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@pytest.fixture
def journey(tmp_path: Path) -> Any:
    repo = Repo(tmp_path / "git")
    repo.write("environments/dev.yaml", "version: v1\n")
    repo.write("environments/prod.yaml", "version: v1\nruns: {require_approved_bundle: true}\n")
    repo.commit("environments")
    keys = Keys(tmp_path / "keys")
    project = tmp_path / "project"
    (project / ".kneo").mkdir(parents=True)
    (project / ".kneo" / "config.yaml").write_text(
        "version: v1\ncontroller:\n"
        f"  repo: {repo.url}\n  branch: main\n  interval: 60\n"
        f"  trusted_keys: {keys.trusted_dir}\n  cache_dir: {tmp_path / 'cache'}\n"
        "  webhook_secret_env: KNEO_TEST_WEBHOOK_SECRET\n  lease_seconds: 10\n"
    )
    (project / "helper.yaml").write_text(json.dumps(AGENT))
    db = tmp_path / "service.sqlite"
    server = LiveServer(
        {
            "KNEO_SERV_DATABASE_URL": f"sqlite:///{db}",
            "KNEO_SERV_AUTH_ENABLED": "true",
            "KNEO_SERV_ADMIN_API_KEY": ADMIN,
            "KNEO_SERV_PROFILES_PATH": str(tmp_path / "profiles.json"),
            "KNEO_TEST_WEBHOOK_SECRET": WEBHOOK_SECRET,
        },
        project,
        tmp_path / "server.log",
    ).start()
    try:
        yield repo, keys, server, db
    finally:
        server.stop()


def test_commit_webhook_active_run_and_refusals(journey: Any) -> None:
    repo, keys, server, db = journey
    auth = {"Authorization": f"Bearer {ADMIN}"}
    with httpx.Client(base_url=server.url, timeout=30) as http:
        # the embedded controller reconciles at startup (and so records prod's run rule)
        status = _wait(
            lambda: (
                (s := http.get("/v1/controller/status", headers=auth).json())["last_fetched_commit"]
                and s
            )
        )
        assert status["is_leader"] and status["last_error"] is None

        repo.write("bundles/helper/dev.json", keys.bundle("helper", "dev", AGENT))
        commit = repo.commit("helper for dev")
        body = json.dumps({"ref": "refs/heads/main", "after": commit}).encode()
        bad = http.post(
            "/v1/controller/webhook",
            content=body,
            headers={"X-GitHub-Event": "push", "X-Hub-Signature-256": _sign(b"x")},
        )
        assert bad.status_code == 401, bad.text
        started = time.perf_counter()
        hook = http.post(
            "/v1/controller/webhook",
            content=body,
            headers={
                "X-GitHub-Event": "push",
                "X-Hub-Signature-256": _sign(body),
                "Content-Type": "application/json",
            },
        )
        assert hook.status_code == 202 and hook.json()["accepted"] is True

        def active() -> dict[str, Any] | None:
            got = http.get("/v1/registry/bundles/helper/dev", headers=auth)
            return got.json()["active"] if got.status_code == 200 else None

        revision = _wait(active, step=0.02)
        assert time.perf_counter() - started < 5.0  # the bench measures it (< 1 s target)
        assert revision["commit"] == commit and revision["revision"] == 1

        run = http.post(
            "/v1/runs", headers=auth, json={"bundle": "helper", "environment": "dev", "input": "hi"}
        )
        assert run.status_code == 200, run.text
        assert run.json()["status"] == "succeeded"
        assert "hello from r1" in run.json()["output_text"]

        refused = http.post(
            "/v1/runs",
            headers=auth,
            json={"spec_path": "helper.yaml", "environment": "prod", "input": "hi"},
        )
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"] == "bundle_not_approved"
        also = http.post(
            "/v1/specs/run",
            headers=auth,
            json={"spec": AGENT, "environment": "prod", "input": "hi"},
        )
        assert also.status_code == 403 and also.json()["error"] == "bundle_not_approved"
        missing = http.post(
            "/v1/runs",
            headers=auth,
            json={"bundle": "helper", "environment": "prod", "input": "hi"},
        )
        assert missing.status_code == 404

    from kneo.store import open_store

    store = open_store(f"sqlite:///{db}")
    try:
        record = store.runs.get_run(run.json()["run_id"])
        assert (
            record.bundle_name,
            record.bundle_revision,
            record.bundle_commit,
            record.spec_digest,
        ) == ("helper", 1, commit, revision["digest"])
    finally:
        store.close()


def _wait(predicate: Any, timeout: float = 20.0, step: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("timed out waiting")
