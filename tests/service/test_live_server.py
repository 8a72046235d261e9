"""Against a real ``kneo service serve`` process: deployment smoke, restart durability,
CLI service mode, and 50 concurrent resumes of one continuation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2
import pytest
from svc_helpers import KEYS, ROOT, auth_env

from tests import http_calls
from tests.cli_zygote import KNEO

SMOKE = "examples/smoke_human_workflow.yaml"
PLANTED = "sk-plantedSECRETvalue-0123456789"


def _cli(
    args: list[str], env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("KNEO_")}
    environ.update(env)
    environ["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [*KNEO, *args],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _wait_status(base: str, run_id: str, wanted: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    status = ""
    while time.monotonic() < deadline:
        status = http_calls.get(
            f"{base}/v1/runs/{run_id}", headers={"X-API-Key": KEYS["admin"]}
        ).json()["status"]
        if status == wanted:
            break
        time.sleep(0.1)
    return status


def test_deployment_smoke_passes_against_kneo_service_serve(live_server, tmp_path: Path) -> None:
    server = live_server({**auth_env(), "OPENAI_API_KEY": PLANTED})
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "deployment_smoke.py"),
            "--base-url",
            server.url,
            "--operator-token",
            KEYS["operator"],
            "--reviewer-token",
            KEYS["reviewer"],
            "--viewer-token",
            KEYS["viewer"],
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    passed = [line for line in result.stdout.splitlines() if line.startswith("PASS")]
    assert len(passed) == 9, result.stdout
    server.stop()
    outputs = result.stdout + result.stderr + server.log_path.read_text()
    for secret in [PLANTED, *KEYS.values()]:
        assert secret not in outputs
    records = [
        json.loads(line)
        for line in server.log_path.read_text().splitlines()
        if line.startswith('{"event":"http_request"')
    ]
    assert any(r.get("continuation_id") and r.get("run_id") for r in records)


def test_queued_run_survives_restart_and_expired_lease_is_reclaimed(live_server, tmp_path):
    """Runs queued while no server runs, or leased by a worker that died, are executed
    by the in-process worker after (re)start."""
    from svc_helpers import build_manager

    from kneo.settings import Settings

    server = live_server(auth_env())
    server.stop()
    settings = Settings.from_env({"KNEO_SERV_DATABASE_URL": server.env["KNEO_SERV_DATABASE_URL"]})
    manager = build_manager(settings, tmp_path, server.env["KNEO_SERV_DATABASE_URL"])
    try:
        queued = manager.start_run_from_spec(input_text="later", spec_path=SMOKE).run_id
        dead = manager.start_run_from_spec(input_text="dead", spec_path=SMOKE).run_id
        record = manager.store.queue.claim("dead-worker", 0.5)  # claims the oldest: `queued`
        assert record is not None
    finally:
        manager.close()
    time.sleep(0.6)  # the dead worker's lease expires
    server.start()
    assert _wait_status(server.url, queued, "paused") == "paused"
    assert _wait_status(server.url, dead, "paused") == "paused"


def test_cli_service_mode_with_service_url_and_profile(live_server, tmp_path: Path) -> None:
    server = live_server(auth_env())
    profiles = tmp_path / "cli-profiles.json"
    env = {
        "KNEO_SERV_API_KEY": KEYS["operator"],
        "KNEO_SERV_PROFILES_PATH": str(profiles),
        "KNEO_SERV_CLIENT_RETRIES": "0",
    }
    ran = _cli(
        [
            "run",
            SMOKE,
            "--service-url",
            server.url,
            "--input",
            "hello",
            "--target",
            "workflow",
            "--json",
        ],
        env,
    )
    assert ran.returncode in (0, 3, 4) or ran.stdout, ran.stderr
    body = json.loads(ran.stdout)
    assert body["status"] == "paused" and body["continuation_id"]
    listed = http_calls.get(
        f"{server.url}/v1/runs/{body['run_id']}", headers={"X-API-Key": KEYS["viewer"]}
    )
    assert listed.status_code == 200

    set_profile = _cli(
        [
            "config",
            "profile",
            "set",
            "local",
            "--service-url",
            server.url,
            "--api-key",
            KEYS["operator"],
        ],
        {"KNEO_SERV_PROFILES_PATH": str(profiles)},
    )
    assert set_profile.returncode == 0, set_profile.stderr
    assert KEYS["operator"] not in set_profile.stdout + set_profile.stderr
    assert oct(profiles.stat().st_mode & 0o777) == "0o600"
    shown = _cli(
        ["config", "profile", "list", "--json"], {"KNEO_SERV_PROFILES_PATH": str(profiles)}
    )
    assert KEYS["operator"] not in shown.stdout and '"authenticated": true' in shown.stdout
    penv = {"KNEO_SERV_PROFILES_PATH": str(profiles)}
    ran = _cli(
        ["run", SMOKE, "--input", "hello", "--target", "workflow", "--profile", "local", "--json"],
        penv,
    )
    assert json.loads(ran.stdout)["status"] == "paused", ran.stderr
    tasks = _cli(["human", "list", "--profile", "local", "--counts", "--json"], penv)
    assert tasks.returncode == 0, tasks.stderr
    assert json.loads(tasks.stdout)["total"] >= 2
    # the active profile is used without flags (precedence step 4)
    got = _cli(["runs", "get", body["run_id"], "--json"], penv)
    assert json.loads(got.stdout)["status"] == "paused", got.stderr
    # auth failures fail fast with the server's message
    bad = _cli(
        ["runs", "get", body["run_id"], "--service-url", server.url],
        {"KNEO_SERV_API_KEY": "wrong-key-value", "KNEO_SERV_PROFILES_PATH": str(profiles)},
    )
    assert bad.returncode != 0 and "Invalid API key" in bad.stderr
    validated = _cli(["spec", "validate", SMOKE, "--profile", "local", "--json"], penv)
    assert validated.returncode == 0 and json.loads(validated.stdout)["valid"] is True


def test_fifty_concurrent_resumes_apply_exactly_one_decision(live_server, request) -> None:
    db = (
        request.getfixturevalue("pg_database")()
        if os.environ.get("KNEO_TEST_DATABASE_URL")
        else None
    )
    env = {**auth_env(), **({"KNEO_SERV_DATABASE_URL": db} if db else {})}
    server = live_server(env)
    h = {"Authorization": f"Bearer {KEYS['admin']}"}
    run = http_calls.post(
        f"{server.url}/v1/runs", headers=h, timeout=60, json={"input": "race", "spec_path": SMOKE}
    ).json()
    cid = run["continuation_id"]
    body = {
        "request_id": run["metadata"]["pending_human_request"]["request_id"],
        "decision": "approved",
    }
    rh = {"Authorization": f"Bearer {KEYS['reviewer']}"}

    def resume(index: int) -> httpx2.Response:
        # the service continues runs on its worker: each caller waits for the outcome
        headers = {**rh, "Prefer": "wait=30"}
        if index % 5 == 0:
            headers["Idempotency-Key"] = "race-key"  # some share a key: replay or 409
        return http_calls.post(
            f"{server.url}/v1/human-tasks/{cid}/resume", headers=headers, json=body, timeout=60
        )

    with ThreadPoolExecutor(max_workers=50) as pool:
        responses = list(pool.map(resume, range(50)))
    codes = [r.status_code for r in responses]
    ok = [r for r in responses if r.status_code == 200]
    assert ok and all(c in (200, 404, 409) for c in codes), codes
    for r in responses:
        if r.status_code == 409:
            assert r.json()["error"] in (
                "resource_locked",
                "request_already_resolved",
                "illegal_transition",
            ), r.json()
    applied = [r for r in ok if r.headers.get("idempotent-replayed") != "true"]
    assert len(applied) == 1, [r.json() for r in applied]
    events = http_calls.get(
        f"{server.url}/v1/audit-events",
        headers=h,
        params={"event_type": "human.decision", "continuation_id": cid},
    ).json()
    assert events["count"] == 1 and events["next_cursor"] is None
    final = http_calls.get(f"{server.url}/v1/runs/{run['run_id']}", headers=h).json()
    assert final["status"] == "succeeded"


@pytest.mark.parametrize("auth", [True])
def test_startup_refuses_auth_without_keys(tmp_path: Path, auth: bool) -> None:
    result = _cli(["service", "serve", "--port", "1"], {"KNEO_SERV_AUTH_ENABLED": "true"}, 30)
    assert result.returncode != 0
    assert "auth is enabled but no API keys" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_with_an_unreachable_database_is_one_error_line(tmp_path: Path) -> None:
    """The platform opens before uvicorn starts: an unreachable database is
    ``error[database_unavailable]`` and a non-zero exit, never a start-up traceback."""
    import socket

    with socket.socket() as probe:  # a port nothing listens on once the probe closes
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/kneo"
    done = _cli(
        ["service", "serve", "--port", "0"],
        {**auth_env(), "KNEO_SERV_DATABASE_URL": url},
    )
    assert done.returncode != 0
    assert "error[database_unavailable]" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_reload_refuses_the_options_its_fresh_app_would_drop(tmp_path: Path) -> None:
    """The reloader serves the default app in a child process: --no-worker or --mcp would be
    silently ignored there, so they are one clear error instead (and nothing starts)."""
    done = _cli(["service", "serve", "--reload", "--no-worker", "--mcp"], auth_env())
    assert done.returncode != 0
    assert "error[invalid_request]" in done.stderr
    assert "--no-worker, --mcp" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
