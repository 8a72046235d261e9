"""Two teams on one service: each acts in its own project, and never learns that the other's
runs, tasks or projects exist (404, the answer for what does not exist)."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient
from teams_helpers import APPROVAL, headers, paused_run


def test_a_key_acts_in_its_home_project_without_naming_it(two_teams: TestClient) -> None:
    run = paused_run(two_teams, "a-op")
    mine = two_teams.get(f"/v1/runs/{run['run_id']}", headers=headers("a-op"))
    assert mine.status_code == 200
    named = two_teams.get(f"/v1/runs/{run['run_id']}", headers=headers("a-op", "team-a"))
    assert named.status_code == 200
    listed = two_teams.get("/v1/runs", headers=headers("a-op")).json()
    assert [r["run_id"] for r in listed["runs"]] == [run["run_id"]]


def test_another_teams_run_and_task_are_not_found(two_teams: TestClient) -> None:
    run = paused_run(two_teams, "a-op")
    for who in ("b-op", "b-rev", "dflt"):
        got = two_teams.get(f"/v1/runs/{run['run_id']}", headers=headers(who))
        assert got.status_code == 404, (who, got.text)
        assert got.json()["error"] == "not_found"
        task = two_teams.get(f"/v1/human-tasks/{run['continuation_id']}", headers=headers(who))
        assert task.status_code == 404, (who, task.text)
        assert two_teams.get("/v1/runs", headers=headers(who)).json()["runs"] == []
        inbox = two_teams.get("/v1/human-tasks", headers=headers(who)).json()
        assert inbox["tasks"] == [], who
    resumed = two_teams.post(
        f"/v1/human-tasks/{run['continuation_id']}/resume",
        headers=headers("b-rev"),
        json={
            "request_id": run["metadata"]["pending_human_request"]["request_id"],
            "decision": "approved",
        },
    )
    assert resumed.status_code == 404, resumed.text
    # the owner's reviewer still finds and decides it
    task = two_teams.get(f"/v1/human-tasks/{run['continuation_id']}", headers=headers("a-rev"))
    assert task.status_code == 200, task.text


@pytest.mark.parametrize("project", ["team-b", "no-such-team"])
def test_a_project_without_a_grant_is_not_found_whether_or_not_it_exists(
    two_teams: TestClient, project: str
) -> None:
    got = two_teams.get("/v1/runs", headers=headers("a-op", project))
    assert got.status_code == 404
    body = got.json()
    assert body["error"] == "project_not_found"
    assert body["message"] == f"No project {project!r} for this caller"


def test_a_member_of_two_projects_acts_in_each_with_its_role_there(two_teams: TestClient) -> None:
    run_a = paused_run(two_teams, "both", "team-a")  # operator in team-a
    refused = two_teams.post(
        "/v1/runs",
        headers=headers("both", "team-b"),  # viewer in team-b
        json={"input": "x", "spec": APPROVAL},
    )
    assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
    run_b = paused_run(two_teams, "b-op")
    seen_b = two_teams.get(f"/v1/runs/{run_b['run_id']}", headers=headers("both", "team-b"))
    assert seen_b.status_code == 200
    not_in_a = two_teams.get(f"/v1/runs/{run_b['run_id']}", headers=headers("both", "team-a"))
    assert not_in_a.status_code == 404
    home = two_teams.get(f"/v1/runs/{run_a['run_id']}", headers=headers("both"))
    assert home.status_code == 200  # its home is the first project its roles name


def test_the_path_form_names_the_project(two_teams: TestClient) -> None:
    run = paused_run(two_teams, "a-op")
    via_path = two_teams.get(f"/v1/projects/team-a/runs/{run['run_id']}", headers=headers("a-op"))
    assert via_path.status_code == 200, via_path.text
    other = two_teams.get(f"/v1/projects/team-b/runs/{run['run_id']}", headers=headers("b-op"))
    assert other.status_code == 404
    both = two_teams.get(
        f"/v1/projects/team-a/runs/{run['run_id']}", headers=headers("a-op", "team-b")
    )
    assert both.status_code == 400 and both.json()["error"] == "project_mismatch"


def test_the_catalog_lists_each_callers_own_projects(two_teams: TestClient) -> None:
    def names(who: str) -> list[str]:
        body = two_teams.get("/v1/projects", headers=headers(who))
        assert body.status_code == 200, body.text
        return [p["name"] for p in body.json()["projects"]]

    assert names("a-op") == ["team-a"]
    assert names("both") == ["team-a", "team-b"]
    assert names("plat") == ["default", "team-a", "team-b"]
    assert two_teams.get("/v1/projects/team-b", headers=headers("a-op")).status_code == 404
    mine = two_teams.get("/v1/projects/team-a", headers=headers("a-op")).json()
    assert mine["name"] == "team-a" and "definition" not in mine
    assert "definition" in two_teams.get("/v1/projects/team-a", headers=headers("plat")).json()


def test_only_a_platform_administrator_manages_projects(two_teams: TestClient) -> None:
    for who in ("a-op", "dflt"):
        made = two_teams.post("/v1/projects", headers=headers(who), json={"name": "team-c"})
        assert made.status_code == 403, made.text
    again = two_teams.post("/v1/projects", headers=headers("plat"), json={"name": "team-a"})
    assert again.status_code == 409
    bad = two_teams.put(
        "/v1/projects/team-a",
        headers=headers("plat"),
        json={"definition": {"environments": {"prod": {"policy_enforcement": {"nope": 1}}}}},
    )
    assert bad.status_code == 400, bad.text
    assert "environments.prod.policy_enforcement" in bad.text
    archived = two_teams.delete("/v1/projects/team-b", headers=headers("plat"))
    assert archived.status_code == 200 and archived.json()["status"] == "archived"
    gone = two_teams.get("/v1/runs", headers=headers("b-op", "team-b"))
    assert gone.status_code == 404 and gone.json()["error"] == "project_not_found"
    assert two_teams.delete("/v1/projects/default", headers=headers("plat")).status_code == 409


def test_the_inbox_its_search_and_counts_never_mix(two_teams: TestClient) -> None:
    """The same words and the same assignee in two projects: each inbox, search and count
    is its own project's; another's header gives nothing at all."""
    runs = {team: paused_run(two_teams, f"{team[-1]}-op") for team in ("team-a", "team-b")}
    for team, who in (("team-a", "a-rev"), ("team-b", "b-rev")):
        mine = runs[team]["continuation_id"]
        for query in ("", "?q=hello", "?q=approval", "?assignee=reviewer", "?include=counts"):
            page = two_teams.get(f"/v1/human-tasks{query}", headers=headers(who))
            assert page.status_code == 200, page.text
            body = page.json()
            assert [t["continuation_id"] for t in body["tasks"]] == [mine], (team, query)
            assert body["total"] == 1, (team, query)
            if query == "?include=counts":
                assert body["counts_by_assignee"] == {"reviewer": 1}, body
