"""What the original platform's clients must see, whatever the shape.

``kneo-client`` 1.2.0 is installed from the package index into a virtual environment of its
own (:mod:`tests.pip_packages`) and its driver (``tests/service/original_clients/
drive_kneo_client.py``) calls every public method of ``KneoClient``; ``kneo-dash`` 0.8.0's
driver then calls every route of the dashboard built on that client. The checks below read
the JSON each driver prints (``conftest.client_outcomes``): every method succeeds and every
route answers with data; where Kneo answers in its own words, docs/clients.md says how.
"""

from __future__ import annotations

from typing import Any


def check_every_public_method_is_driven(driven: dict[str, Any]) -> None:
    surface = set(driven["surface"])
    assert len(surface) >= 36
    assert surface - set(driven["results"]) == set()


def check_every_method_succeeds(driven: dict[str, Any]) -> None:
    failed = {
        name: outcome["detail"] for name, outcome in driven["results"].items() if not outcome["ok"]
    }
    assert failed == {}


def check_answers_carry_what_the_client_reads(driven: dict[str, Any]) -> None:
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


def check_graphs_preview_and_skills_as_the_client_reads_them(driven: dict[str, Any]) -> None:
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


def check_unknown_filters_are_refused_not_ignored(driven: dict[str, Any]) -> None:
    """The client's own list calls with a filter Kneo does not take: its typed 422."""
    refused = driven["results"]["refused"]["detail"]
    assert refused == ["unknown_query_parameters"] * len(refused) and len(refused) >= 2


#: (The dashboard's policy page of an environment without a stored policy is a 404:
#: docs/clients.md. The client's run stored one for ``dev`` before the dashboard reads it:
#: the client's driver runs first.)


def check_every_dashboard_route_answers_with_data(dash: dict[str, Any]) -> None:
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
