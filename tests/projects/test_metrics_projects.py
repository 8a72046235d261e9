"""Metrics per project: two teams' runs, steps, waits and pending tasks are each labelled with
their project on the one platform-wide ``/metrics`` page, which only the installation's
``metrics:read`` (or a platform administrator) may read; a real Prometheus scrapes the same
exposition and sums by project."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient
from teams_helpers import headers, paused_run

from kneo import metrics
from kneo.settings import Settings
from tests.deploy.prometheus_server import free_port, running

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: TestClient, who: str = "plat", project: str | None = None) -> Samples:
    response = client.get("/metrics", headers=headers(who, project))
    assert response.status_code == 200, response.text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(parsed: Samples, name: str, **labels: str) -> float:
    return parsed.get((name, frozenset(labels.items())), 0.0)


def projects_of(parsed: Samples, name: str) -> set[str]:
    return {dict(labels)["project"] for (n, labels) in parsed if n == name}


def approve(client: TestClient, run: dict[str, Any], who: str) -> None:
    request_id = run["metadata"]["pending_human_request"]["request_id"]
    resumed = client.post(
        f"/v1/human-tasks/{run['continuation_id']}/resume",
        headers=headers(who),
        json={"request_id": request_id, "decision": "approved"},
    )
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["status"] == "succeeded", resumed.text


def test_each_teams_series_carry_its_project(two_teams: TestClient) -> None:
    before = scrape(two_teams)
    approve(two_teams, paused_run(two_teams, "a-op"), "a-rev")  # team-a: drafted, approved
    paused_run(two_teams, "b-op")  # team-b: waits for its reviewer
    after = scrape(two_teams)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    done = {"status": "succeeded"}
    assert delta("kneo_runs_total", project="team-a", **done) == 1
    assert delta("kneo_runs_total", project="team-b", **done) == 0
    assert delta("kneo_runs_total", project="default", **done) == 0
    assert delta("kneo_run_duration_seconds_count", project="team-a") == 1
    drafted = {"kind": "agent", "status": "completed"}
    assert delta("kneo_steps_total", project="team-a", **drafted) == 1
    assert delta("kneo_steps_total", project="team-b", **drafted) == 1
    assert delta("kneo_steps_total", project="default", **drafted) == 0
    assert delta("kneo_human_task_wait_seconds_count", project="team-a") == 1
    assert delta("kneo_human_task_wait_seconds_count", project="team-b") == 0
    # the gauges: every project's, grouped by project
    pending = {"kind": "approval", "environment": "dev"}
    assert value(after, "kneo_human_tasks_pending", project="team-b", **pending) == 1
    assert projects_of(after, "kneo_human_tasks_pending") == {"team-b"}
    every = {"default", "team-a", "team-b"}
    for gauge in ("kneo_queue_depth", "kneo_queue_lag_seconds", "kneo_blocked_digests"):
        assert projects_of(after, gauge) == every, gauge
    # label names are fixed: every series of a project-scoped family has the project label
    for (name, labels), _ in after.items():
        if name.startswith(("kneo_runs", "kneo_steps", "kneo_human", "kneo_queue")):
            assert "project" in dict(labels), name


def test_the_page_is_the_installations_to_read(two_teams: TestClient) -> None:
    """``metrics:read`` in a team's project is not enough: the page shows every team's."""
    assert scrape(two_teams, "dflt")  # an operator of the default project
    assert scrape(two_teams, "plat", "team-a")  # a platform administrator, any project named
    for who, project in (("a-op", None), ("a-op", "team-a"), ("both", "team-a")):
        refused = two_teams.get("/metrics", headers=headers(who, project))
        assert refused.status_code == 403, (who, refused.text)
        assert refused.json()["required_scope"] == "metrics:read"
    unknown = two_teams.get("/metrics", headers=headers("dflt", "team-b"))
    assert unknown.status_code == 404  # no grant there: the one answer, as on every route
    assert unknown.json()["error"] == "project_not_found"


def test_a_real_prometheus_sums_each_project(two_teams: TestClient, tmp_path: Path) -> None:
    """The same exposition on a metrics port, scraped by Prometheus: ``sum by (project)``
    keeps the teams apart, and the gauges answer per project."""
    approve(two_teams, paused_run(two_teams, "a-op"), "a-rev")
    paused_run(two_teams, "b-op")
    counted = scrape(two_teams)  # this process's counts (other tests' runs too), as of now
    succeeded = {
        dict(labels)["project"]: n
        for (name, labels), n in counted.items()
        if name == "kneo_runs_total" and dict(labels)["status"] == "succeeded"
    }
    assert succeeded["team-a"] >= 1
    store = two_teams.app.state.manager.store
    port = free_port()
    settings = dataclasses.replace(
        Settings.from_env({}), metrics_port=port, metrics_host="127.0.0.1"
    )
    server = metrics.serve_port(store, settings)
    try:
        with running(tmp_path, [f"127.0.0.1:{port}"]) as prometheus:
            prometheus.scraped(1)
            runs = prometheus.query('sum by (project) (kneo_runs_total{status="succeeded"})')
            by_project = {s["metric"]["project"]: float(s["value"][1]) for s in runs}
            assert by_project == succeeded  # each project's own sum, as the process counts
            pending = prometheus.query(
                "sum by (project) (max by (project, kind, environment) (kneo_human_tasks_pending))"
            )
            assert {s["metric"]["project"]: s["value"][1] for s in pending} == {"team-b": "1"}
            depth = prometheus.query("kneo_queue_depth")
            assert {s["metric"]["project"] for s in depth} == {"default", "team-a", "team-b"}
    finally:
        server.shutdown()
