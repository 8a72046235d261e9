"""Graph views, the spec explanation and the policy preview over HTTP, on SQLite and on
PostgreSQL (``KNEO_TEST_DATABASE_URL``): ``GET /v1/runs/{id}/graph`` follows a real run
through its pause, its loop and its failure; ``POST /v1/specs/graph`` and ``/explain`` check
a caller's spec like every spec route (a function outside the project is refused); ``POST
/v1/policies/environment/{env}/preview`` answers what a PUT would change and writes
nothing; ``GET /v1/registry/bundles/{bundle}/{env}/graph`` draws a bundle by name. One app
per database for the module."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from failing_steps import FAILING_SPEC
from starlette.testclient import TestClient
from svc_helpers import ROOT, auth_env, build_manager, headers

from kneo.service import create_app
from kneo.settings import Settings

ROUTE = "examples/hitl_route.yaml"
LOOP = "examples/graph_review_workflow.yaml"


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def client(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    url = None
    if request.param == "postgres":
        url = request.getfixturevalue("pg_session_databases").new()
    tmp = tmp_path_factory.mktemp(request.param)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)
        settings = Settings.from_env({**auth_env(), "KNEO_SERV_PROFILES_PATH": str(tmp / "p")})
        manager = build_manager(settings, tmp, url)
        app = create_app(False, settings=settings, manager=manager, start_worker=False)
        with TestClient(app, raise_server_exceptions=False) as test_client:
            yield test_client
        manager.close()


def _run(client: TestClient, **body: Any) -> dict[str, Any]:
    answer = client.post("/v1/runs", headers=headers("operator"), json={"input": "x", **body})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def _graph(client: TestClient, run_id: str, role: str = "viewer") -> dict[str, Any]:
    answer = client.get(f"/v1/runs/{run_id}/graph", headers=headers(role))
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def _states(graph: dict[str, Any]) -> dict[str, tuple[str, int]]:
    return {n["id"]: (n["state"], n["visits"]) for n in graph["nodes"]}


def _taken(graph: dict[str, Any]) -> dict[tuple[str, str], int]:
    return {(e["source"], e["target"]): e["taken"] for e in graph["edges"]}


def test_a_paused_run_is_at_its_human_node_and_moves_on_when_decided(client) -> None:
    paused = _run(client, spec_path=ROUTE)
    graph = _graph(client, paused["run_id"])
    assert (graph["workflow_kind"], graph["start"], graph["status"]) == ("graph", "draft", "paused")
    assert graph["current"] == "choose" and graph["visited"] == ["draft"]
    assert _states(graph) == {
        "draft": ("visited", 1),
        "choose": ("current", 0),
        "fast_track": ("pending", 0),
        "full_review": ("pending", 0),
    }
    assert _taken(graph) == {
        ("draft", "choose"): 1,
        ("choose", "fast_track"): 0,
        ("choose", "full_review"): 0,
    }
    branch = next(e for e in graph["edges"] if e["target"] == "fast_track")
    assert (branch["kind"], branch["condition"]) == ("branch", 'equals "fast_track"')

    request_id = paused["metadata"]["pending_human_request"]["request_id"]
    done = client.post(
        f"/v1/human-tasks/{paused['continuation_id']}/resume",
        headers=headers("reviewer"),
        json={"request_id": request_id, "decision": "selected", "selected_option": "fast_track"},
    ).json()
    assert done["status"] == "succeeded", done
    graph = _graph(client, paused["run_id"])
    assert graph["current"] is None
    assert graph["visited"] == ["draft", "choose", "fast_track"]
    assert _states(graph)["full_review"] == ("pending", 0)
    assert _taken(graph)[("choose", "fast_track")] == 1


def test_a_loop_counts_visits_and_routes_taken(client) -> None:
    done = _run(client, spec_path=LOOP)
    assert done["status"] == "succeeded", done
    graph = _graph(client, done["run_id"])
    assert graph["visited"] == ["retrieve", "analyze", "review", "revise", "finalize"]
    assert _states(graph)["review"] == ("visited", 2)
    taken = _taken(graph)
    assert taken[("review", "revise")] == 1 and taken[("revise", "review")] == 1
    assert taken[("review", "finalize")] == 1
    assert graph["max_visits"] == 3


def test_a_failed_run_shows_where_it_failed(client) -> None:
    failed = _run(client, spec=FAILING_SPEC)
    assert failed["status"] == "failed"
    graph = _graph(client, failed["run_id"])
    assert graph["current"] == "boom" and _states(graph) == {"boom": ("failed", 0)}


def test_run_graph_errors(client) -> None:
    missing = client.get("/v1/runs/run_nope/graph", headers=headers("viewer"))
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    assert client.get("/v1/runs/run_nope/graph").status_code == 401


def test_spec_graph_is_the_compiled_workflow_and_checks_the_callers_spec(client) -> None:
    answer = client.post("/v1/specs/graph", headers=headers("viewer"), json={"spec_path": LOOP})
    assert answer.status_code == 200, answer.text
    graph = answer.json()
    assert [n["id"] for n in graph["nodes"]] == [
        "retrieve",
        "analyze",
        "review",
        "revise",
        "finalize",
    ]
    assert {n["state"] for n in graph["nodes"]} == {"pending"}
    assert graph["current"] is None and graph["visited"] == []
    default = next(e for e in graph["edges"] if e["default"])
    assert (default["source"], default["target"], default["label"]) == (
        "review",
        "revise",
        "otherwise",
    )

    # a caller-provided spec naming a function outside the project: refused, nothing drawn
    hostile = {
        "version": "v1",
        "workflow": {"steps": [{"id": "a", "kind": "function", "ref": "os:system"}]},
    }
    refused = client.post("/v1/specs/graph", headers=headers("admin"), json={"spec": hostile})
    assert refused.status_code == 400
    assert refused.json()["error"] == "E_FUNCTION_NOT_ALLOWED"
    assert "nodes" not in refused.json()
    outside = client.post(
        "/v1/specs/graph", headers=headers("admin"), json={"spec_path": "/etc/passwd"}
    )
    assert outside.status_code == 403 and outside.json()["error"] == "spec_path_not_allowed"
    forbidden = client.post(
        "/v1/specs/graph", headers=headers("reviewer"), json={"spec_path": LOOP}
    )
    assert forbidden.status_code == 403 and forbidden.json()["required_scope"] == "specs:read"
    unknown = client.post(
        "/v1/specs/graph", headers=headers("viewer"), json={"spec_path": LOOP, "layout": "x"}
    )
    assert unknown.status_code == 422 and "layout" in unknown.text


def test_spec_explain_says_where_a_run_waits(client) -> None:
    answer = client.post("/v1/specs/explain", headers=headers("viewer"), json={"spec_path": ROUTE})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["valid"] is True and body["workflow"]["step_count"] == 4  # kept as it was
    explained = body["explanation"]
    assert [p["step"] for p in explained["pauses"]] == ["choose"]
    assert explained["pauses"][0]["decisions"] == ["selected"]
    assert 'choose → fast_track when equals "fast_track"' in explained["routes"]
    assert any("pauses at choose" in line for line in explained["lines"])


def _audit_count(client: TestClient) -> int:
    page = client.get("/v1/audit-events?limit=500", headers=headers("admin")).json()
    return len(page["events"])


def test_policy_preview_compares_with_the_policy_in_force_and_writes_nothing(client) -> None:
    env = "qa-preview"
    before = _audit_count(client)
    proposed = {"enabled": True, "require_human_review": True}
    answer = client.post(
        f"/v1/policies/environment/{env}/preview", headers=headers("service"), json=proposed
    )
    assert answer.status_code == 200, answer.text
    first = answer.json()
    assert first["current_source"] == "none" and first["current_policy"] is None
    assert first["changes"] and first["loosened"] == []
    assert {c["gate"] for c in first["tightened"]} == {"policy_enforcement"}
    assert first["needs_policy_approval"] is False
    assert (
        client.get(f"/v1/policies/environment/{env}", headers=headers("admin")).status_code == 404
    )
    assert _audit_count(client) == before  # nothing stored, nothing audited

    stored = {"enabled": True, "require_human_review": True, "require_guardrails": True}
    put = client.put(f"/v1/policies/environment/{env}", headers=headers("admin"), json=stored)
    assert put.status_code == 200
    looser = client.post(
        f"/v1/policies/environment/{env}/preview", headers=headers("operator"), json=proposed
    ).json()
    assert looser["current_source"] == "stored"
    assert [c["gate"] for c in looser["loosened"]] == ["policy_enforcement.require_guardrails"]
    assert looser["needs_policy_approval"] is True
    assert looser["diff"] == {"require_guardrails": {"from": True, "to": False}}
    same = client.post(
        f"/v1/policies/environment/{env}/preview", headers=headers("operator"), json=stored
    ).json()
    assert (same["changed"], same["changes"]) == (False, [])
    kept = client.get(f"/v1/policies/environment/{env}", headers=headers("admin")).json()
    assert kept["policy"]["require_guardrails"] is True  # the preview wrote nothing


def test_policy_preview_refuses_what_put_refuses(client) -> None:
    url = "/v1/policies/environment/qa/preview"
    viewer = client.post(url, headers=headers("viewer"), json={"enabled": True})
    assert viewer.status_code == 403 and viewer.json()["required_scope"] == "policies:read"
    typo = client.post(url, headers=headers("operator"), json={"require_guardrail": True})
    assert typo.status_code == 422 and "require_guardrail" in typo.text
    bad_env = client.post(
        "/v1/policies/environment/Bad%20Name/preview",
        headers=headers("operator"),
        json={"enabled": True},
    )
    assert bad_env.status_code in (400, 422) and "environment" in bad_env.text


def test_project_policy_is_what_a_first_put_replaces(client) -> None:
    """``prod`` has a policy in the project (.kneo/config.yaml): a preview with nothing
    stored compares with it, so dropping its gates shows as loosening them."""
    answer = client.post(
        "/v1/policies/environment/prod/preview",
        headers=headers("operator"),
        json={"enabled": True},
    ).json()
    assert answer["current_source"] == "project"
    assert answer["current_policy"]["require_guardrails"] is True
    assert "policy_enforcement.require_guardrails" in {c["gate"] for c in answer["loosened"]}


def test_policy_preview_names_the_recent_runs_it_would_refuse(client) -> None:
    """A run in dev (policy not enforced) of an agent without guardrails: requiring
    guardrails there would refuse its spec, so the preview names it; turning enforcement
    off again affects nothing."""
    mailer = _run(client, spec_path="examples/hitl_tool_approval.yaml", environment="dev")
    url = "/v1/policies/environment/dev/preview"
    strict = client.post(
        url, headers=headers("operator"), json={"enabled": True, "require_guardrails": True}
    ).json()
    assert strict["runs_evaluated"] >= 1
    assert mailer["run_id"] in strict["newly_blocking"]
    assert set(strict["newly_blocking"]) <= set(strict["affected_run_ids"])
    same = client.post(url, headers=headers("operator"), json={"enabled": False}).json()
    assert same["affected_run_ids"] == [] and same["runs_evaluated"] == strict["runs_evaluated"]


def test_a_bundle_is_drawn_by_name_from_the_registry(client) -> None:
    store = client.app.state.manager.store
    digest = "sha256:" + "2" * 64
    with store.transaction() as tx:
        tx.add_revision("drawn", "prod", digest=digest, status="active", spec=FAILING_SPEC)
    answer = client.get("/v1/registry/bundles/drawn/prod/graph", headers=headers("viewer"))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["bundle"], body["revision"], body["digest"]) == ("drawn", 1, digest)
    assert [n["id"] for n in body["nodes"]] == ["boom"] and body["current"] is None
    missing = client.get("/v1/registry/bundles/drawn/staging/graph", headers=headers("viewer"))
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    bad = client.get("/v1/registry/bundles/Bad%20Name/prod/graph", headers=headers("viewer"))
    assert bad.status_code in (400, 422) and "bundle" in bad.text
