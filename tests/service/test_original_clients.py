"""The original platform's published Python client works against Kneo.

``kneo-client`` 1.2.0 is installed from the package index into a virtual environment of its
own (:mod:`pip_packages`, cached per requirement set) and drives every public method of its
``KneoClient`` (``original_clients/drive_kneo_client.py``) against a live ``kneo service
serve``, on SQLite and on PostgreSQL. Each method's outcome is asserted here: every one
succeeds; where Kneo answers in its own words, docs/clients.md says how.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from svc_helpers import KEYS, ROOT, LiveServer, auth_env

from tests.conftest import PG_ENV, PgDatabases, pg_base_url
from tests.pip_packages import venv_for

CLIENTS = ("kneo-client==1.2.0", "kneo-dash==0.8.0")
DRIVER = Path(__file__).parent / "original_clients" / "drive_kneo_client.py"
DASH = Path(__file__).parent / "original_clients" / "drive_kneo_dash.py"


def _server(backend: str, tmp: Path, databases: PgDatabases | None) -> LiveServer:
    url = databases.new() if databases is not None else f"sqlite:///{tmp / 'live.sqlite'}"
    env = {
        **auth_env(),
        "KNEO_SERV_DATABASE_URL": url,
        "KNEO_SERV_PROFILES_PATH": str(tmp / "profiles.json"),
        "KNEO_SERV_WORKER_POLL_SECONDS": "0.1",
    }
    return LiveServer(env, ROOT, tmp / f"{backend}.log")


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Every method's outcome against a live service on each database (both driven at
    once: two processes on two cores), and the names of the client's public methods."""
    python = venv_for(CLIENTS, ignore_requires_python=True)
    tmp = tmp_path_factory.mktemp("original-clients")
    databases = PgDatabases(pg_base_url(), "kneo_oc") if os.environ.get(PG_ENV) else None
    servers = {"sqlite": _server("sqlite", tmp, None)}
    if databases is not None:
        servers["postgresql"] = _server("postgresql", tmp, databases)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KNEO_", "PYTHON"))}
    env |= {
        "KNEO_OPERATOR_KEY": KEYS["operator"],
        "KNEO_REVIEWER_KEY": KEYS["reviewer"],
        "KNEO_ADMIN_KEY": KEYS["admin"],
    }
    try:
        with ThreadPoolExecutor() as pool:  # both start at once
            list(pool.map(lambda server: server.start(timeout=240), servers.values()))
        answers: dict[str, Any] = {}
        for script in (DRIVER, DASH):  # the client first, then the dashboard on it
            drivers = {
                backend: subprocess.Popen(
                    [str(python), str(script), server.url],
                    cwd=ROOT,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                for backend, server in servers.items()
            }
            for backend, driver in drivers.items():
                out, err = driver.communicate(timeout=240)
                assert driver.returncode == 0, err[-3000:]
                answer = json.loads(out.strip().splitlines()[-1])
                key = backend if script == DRIVER else f"{backend}-dash"
                answers[key] = answer
        yield answers
    finally:
        for server in servers.values():
            server.stop()
        if databases is not None:
            databases.drop_all()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, outcomes: dict[str, Any]) -> str:
    if request.param not in outcomes:
        pg_base_url()  # skips, or fails under CI, saying why
    return str(request.param)


@pytest.fixture
def driven(backend: str, outcomes: dict[str, Any]) -> dict[str, Any]:
    answer: dict[str, Any] = outcomes[backend]
    return answer


@pytest.fixture
def dash(backend: str, outcomes: dict[str, Any]) -> dict[str, Any]:
    answer: dict[str, Any] = outcomes[f"{backend}-dash"]
    return answer


def test_every_public_method_is_driven(driven: dict[str, Any]) -> None:
    surface = set(driven["surface"])
    assert len(surface) >= 36
    assert surface - set(driven["results"]) == set()


def test_every_method_succeeds(driven: dict[str, Any]) -> None:
    failed = {
        name: outcome["detail"] for name, outcome in driven["results"].items() if not outcome["ok"]
    }
    assert failed == {}


def test_answers_carry_what_the_client_reads(driven: dict[str, Any]) -> None:
    results = driven["results"]
    assert results["health.readyz"]["detail"]["ok"] is True
    assert results["runs.create"]["detail"]["status"] == "paused"
    assert results["runs.get"]["detail"]["session_id"] == "sess-1"
    assert results["runs.wait_for_completion"]["detail"]["status"] == "succeeded"
    assert results["specs.compile"]["detail"]["ok"] is True
    assert results["specs.explain"]["detail"]["summary"]
    assert isinstance(results["runs.checkpoints_diff"]["detail"]["change_count"], int)
    assert "dev" in results["policies.environment_list"]["detail"]
    assert results["iterate_all"]["detail"] == 4  # every run so far, two by two
    assert results["runs.tail_trace"]["detail"] > 0
    listed = results["runs.list"]["detail"]  # session_id=sess-1, has_error=false
    assert listed["count"] == 1 and listed["items"][0]["session_id"] == "sess-1"
    # decided: the run goes on (on a worker, so it may still be running)
    assert results["human_tasks.resume_first_pending"]["detail"]["status"] in (
        "running",
        "succeeded",
    )
    assert results["runs.continue_"]["detail"].startswith("conflict: ")


def test_graphs_preview_and_skills_as_the_client_reads_them(driven: dict[str, Any]) -> None:
    """The run's graph (paused at its human node: ``current`` and ``visited`` in the node
    ids of ``nodes``), the spec's, a policy's preview and the project's skills, each parsed
    by the client's own models."""
    results = driven["results"]
    graph = results["runs.graph"]["detail"]
    assert (graph["status"], graph["current"], graph["visited"]) == ("paused", "approve", ["draft"])
    assert [n["id"] for n in graph["nodes"]] == ["draft", "approve", "publish"]
    assert [(e["source"], e["target"]) for e in graph["edges"]] == [
        ("draft", "approve"),
        ("approve", "publish"),
    ]
    spec = results["specs.graph"]["detail"]
    assert (spec["start"], spec["workflow_kind"]) == ("draft", "sequential")
    assert "current" not in spec and len(spec["nodes"]) == 3
    preview = results["policies.environment_preview"]["detail"]
    assert preview["environment"] == "dev" and preview["runs_evaluated"] >= 1
    assert preview["diff"] == {} and preview["newly_blocking"] == []  # the policy just stored
    skills = results["skills.list"]["detail"]  # the checkout's .kneo/config.yaml declares one
    assert skills["count"] == skills["total"] == 1
    assert skills["items"][0]["name"] == "plain-english" and skills["items"][0]["instructions"]


def test_unknown_filters_are_refused_not_ignored(driven: dict[str, Any]) -> None:
    """The client's own list calls with a filter Kneo does not take: its typed 422."""
    refused = driven["results"]["refused"]["detail"]
    assert refused == ["unknown_query_parameters"] * len(refused) and len(refused) >= 2


#: (The dashboard's policy page of an environment without a stored policy is a 404:
#: docs/clients.md. The client's run stored one for ``dev`` before the dashboard reads it.)


def test_every_dashboard_route_answers_with_data(dash: dict[str, Any]) -> None:
    results = dash["results"]
    assert len(results) >= 30
    failed = {route: outcome for route, outcome in results.items() if outcome["status"] != 200}
    assert failed == {}
    screens = [
        "GET /api/overview",
        "GET /api/runs",
        "GET /api/runs/{run_id}",
        "GET /api/runs/{run_id}/trace",
        "GET /api/runs/{run_id}/checkpoints/diff",
        "GET /api/human-tasks",
        "GET /api/sessions/{session_id}",
        "GET /api/runs/{run_id}/chain",
        "GET /api/runs/{run_id}/graph",
    ]
    for route in screens:
        assert not results[route]["empty"], route
    session = results["GET /api/sessions/{session_id}"]["body"]
    assert "'available': True" in session and dash["ids"]["run_id"] in session
    assert "'change_count': " in results["GET /api/runs/{run_id}/checkpoints/diff"]["body"]
    graph = results["GET /api/runs/{run_id}/graph"]["body"]  # the dashboard draws it
    assert "'available': True" in graph and "'id': 'approve'" in graph
