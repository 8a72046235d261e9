"""``kneo audit list|get``: the audit log from the terminal, locally (the service's own
route is walked by docs/quickstart.md's test and the role matrix)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.doc_walk import project_copy
from tests.e2e.test_reset_and_init import kneo


def test_audit_list_and_get(tmp_path: Path) -> None:
    project = project_copy(tmp_path / "project")
    run = json.loads(
        kneo(project, "run", "examples/smoke_human_workflow.yaml", "-i", "x", "--json").stdout
    )
    resumed = kneo(
        project, "human", "resume", run["continuation_id"],
        "--request-id", run["request_id"], "--approve", "--actor", "alice",
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    listed = json.loads(
        kneo(project, "audit", "list", "--run-id", run["run_id"], "-o", "json").stdout
    )
    types = [e["event_type"] for e in listed["events"]]
    assert types[0] == "human.decision" and types[-1] == "run.created"  # newest first
    decision = listed["events"][0]
    assert decision["actor"] == "alice" and decision["payload"]["decision"] == "approved"
    only = json.loads(
        kneo(project, "audit", "list", "--event-type", "human.decision", "--json").stdout
    )
    assert [e["id"] for e in only["events"]] == [decision["id"]]
    got = json.loads(kneo(project, "audit", "get", decision["id"], "-o", "json").stdout)
    assert got == decision
    table = kneo(project, "audit", "get", decision["id"])
    assert "decision:" in table.stdout and "approved" in table.stdout
    missing = kneo(project, "audit", "get", "evt_missing")
    assert missing.returncode == 1
    assert missing.stderr.startswith("error[not_found]: audit event 'evt_missing' not found")
