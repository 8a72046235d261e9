"""Service restarts against the same database and finds paused runs listed and resumable
(SQLite and PostgreSQL); 20 processes resuming one continuation on PostgreSQL apply exactly
one decision."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from kneo.store import AuditQuery
from tests import http_calls

from .helpers import env_for, open_manager, step_counts

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "service"))
from svc_helpers import LiveServer


def test_service_restart_keeps_paused_runs_resumable(project: Path, db_url: str) -> None:
    env = env_for(project, db_url, KNEO_SERV_PROFILES_PATH=str(project / "profiles.json"))
    server = LiveServer(env, project, project / "server.log")
    server.cwd = project
    server.start()
    try:
        paused = []
        for i in range(3):
            body = http_calls.post(
                f"{server.url}/v1/runs",
                timeout=60,
                json={"input": f"p{i}", "spec_path": "human.yaml"},
            ).json()
            assert body["status"] == "paused", body
            paused.append(body)
        server.stop()
        server.start()  # same database, new process
        listed = http_calls.get(f"{server.url}/v1/runs", params={"status": "paused"}).json()
        assert {r["run_id"] for r in listed["runs"]} == {b["run_id"] for b in paused}
        tasks = http_calls.get(f"{server.url}/v1/human-tasks").json()
        assert {t["continuation_id"] for t in tasks["tasks"]} == {
            b["continuation_id"] for b in paused
        }
        for body in paused:
            request_id = body["metadata"]["pending_human_request"]["request_id"]
            done = http_calls.post(
                f"{server.url}/v1/human-tasks/{body['continuation_id']}/resume",
                json={"request_id": request_id, "decision": "approved"},
                headers={"Prefer": "wait=30"},  # continued on its worker: wait for the end
                timeout=60,
            )
            assert done.status_code == 200 and done.json()["status"] == "succeeded", done.text
    finally:
        server.stop()
    counts = step_counts(project)
    assert all(counts[(f"p{i}", step)] == 1 for i in range(3) for step in ("s1", "s2"))


def test_twenty_processes_resume_one_continuation(
    project: Path, pg_database: Callable[[], str]
) -> None:
    url = pg_database()
    manager = open_manager(project, url)
    try:
        paused = manager.run_from_spec(input_text="race", spec_path=project / "human.yaml")
        cid = paused.continuation_id
        request_id = manager.store.tasks.get_continuation(cid).requests[0]["request_id"]
        start_at = time.time() + 8.0  # every process imported and connected by then
        env = env_for(project, url)
        racers = [
            subprocess.Popen(
                [sys.executable, str(project / "racer.py"), cid, request_id, str(start_at), str(i)],
                cwd=project,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(20)
        ]
        outcomes = []
        for proc in racers:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0 and "Traceback" not in err, err
            outcomes.append(json.loads(out.strip().splitlines()[-1]))
        results = Counter(o.get("error", "applied") for o in outcomes)
        assert results["applied"] == 1, results
        assert set(results) <= {"applied", "resource_locked", "request_already_resolved"}, results
        run = manager.store.runs.get_run(paused.run_id)
        assert run.status == "succeeded"
        decisions = manager.store.audit.list_audit(
            AuditQuery(event_type="human.decision", continuation_id=cid)
        ).items
        assert len(decisions) == 1
        assert step_counts(project)[("race", "s2")] == 1
    finally:
        manager.store.close()
