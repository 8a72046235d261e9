"""Two projects with the controller on: a project's journey is its own. team-a's operator runs
an approval (the spec sent inline, as a project's caller does), team-a's reviewer decides it
and gets the seed's synchronous answer; team-b's operator cannot see the run or its task,
and each project's controller status names its own source's commit."""

from __future__ import annotations

import pytest

from tests.matrix.shapes import Shape
from tests.projects.teams_helpers import APPROVAL

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("matrix-two-projects")]


def test_a_projects_run_is_decided_in_it_and_hidden_from_the_other(two_projects: Shape) -> None:
    shape = two_projects
    a = {"X-Kneo-Project": "team-a"}
    started = shape.post("/v1/runs", "a-op", {"input": "hello", "spec": APPROVAL}, headers=a)
    assert started.status_code == 200, started.text
    run = started.json()
    assert run["status"] == "paused", run
    cid, rid = run["continuation_id"], run["metadata"]["pending_human_request"]["request_id"]
    b = {"X-Kneo-Project": "team-b"}
    assert shape.get(f"/v1/runs/{run['run_id']}", "b-op", headers=b).status_code == 404
    assert shape.get(f"/v1/human-tasks/{cid}", "b-op", headers=b).status_code == 404
    assert shape.get(f"/v1/runs/{run['run_id']}", "operator").status_code == 404  # default's
    decided = shape.post(
        f"/v1/human-tasks/{cid}/resume",
        "a-rev",
        {"request_id": rid, "decision": "approved"},
        headers=a,
    )
    assert decided.status_code == 200 and decided.json()["status"] == "succeeded", decided.text
    for who, project in (("a-op", "team-a"), ("b-op", "team-b")):
        status = shape.get("/v1/controller/status", who, headers={"X-Kneo-Project": project})
        assert status.status_code == 200, status.text
        body = status.json()
        assert body["last_fetched_commit"] and body["last_error"] is None, body
