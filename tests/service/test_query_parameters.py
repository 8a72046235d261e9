"""Every query parameter is honoured or refused, on every route (issue 55).

Walks the app's routes: the query names each handler reads (its parameters and its
dependencies') are the ones the OpenAPI document declares; every declared one is taken
(never answered ``unknown_query_parameters``); and a name no route declares is ``422
unknown_query_parameters`` naming it on every route, documented or legacy, list routes first.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi.routing import APIRoute, iter_route_contexts
from svc_helpers import KEYS, auth_env

from kneo.service.query_params import StrictQueryRoute, declared_query

ADMIN = {"Authorization": f"Bearer {KEYS['admin']}"}
#: a value each declared parameter's type accepts (the answer may still be 400 or 404:
#: what matters is that the name is taken)
SAMPLE = {"integer": "1", "number": "1", "boolean": "true", "array": "x"}


def _routes(app: Any) -> list[tuple[str, str, APIRoute]]:
    found = []
    for ctx in iter_route_contexts(app.routes):
        route = getattr(ctx, "original_route", ctx)
        if isinstance(route, APIRoute):
            for method in sorted(ctx.methods or ()):
                found.append((method, str(ctx.path), route))
    return found


def _filled(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x1", path)


def _sample(schema: dict[str, Any]) -> str:
    kinds = [schema.get("type")] + [s.get("type") for s in schema.get("anyOf", [])]
    for kind in kinds:
        if kind in SAMPLE:
            return SAMPLE[kind]
    enum = schema.get("enum") or [e for s in schema.get("anyOf", []) for e in s.get("enum", [])]
    return str(enum[0]) if enum else "x"


def test_every_route_refuses_what_it_does_not_declare(make_client) -> None:
    client = make_client(auth_env())
    routes = _routes(client.app)
    assert len(routes) > 50
    lists = [r for r in routes if r[0] == "GET" and "{" not in r[1]]
    for method, path, route in sorted(routes, key=lambda r: r not in lists):
        assert isinstance(route, StrictQueryRoute), path
        answer = client.request(method, _filled(path) + "?no_such_filter=1", headers=ADMIN)
        assert answer.status_code == 422, (method, path, answer.text)
        body = answer.json()
        assert body["error"] == "unknown_query_parameters", (method, path, body)
        assert body["parameters"] == ["no_such_filter"]
        assert body["allowed"] == sorted(declared_query(route))


def test_the_document_declares_what_each_handler_reads(make_client) -> None:
    client = make_client(auth_env())
    document = client.get("/openapi.json").json()
    by_path = {(m, p): r for m, p, r in _routes(client.app)}
    checked = 0
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            route = by_path[method.upper(), path]
            params = [p for p in operation.get("parameters", []) if p["in"] == "query"]
            assert {p["name"] for p in params} == declared_query(route), (method, path)
            for param in params:  # each one is taken, with a value of its type
                value = _sample(param.get("schema", {}))
                url = f"{_filled(path)}?{param['name']}={value}"
                answer = client.request(method.upper(), url, headers=ADMIN)
                code = answer.json().get("error") if answer.content else None
                assert code != "unknown_query_parameters", (method, path, param["name"])
                checked += 1
    assert checked > 40


def test_run_filters_are_applied(make_client) -> None:
    """``GET /v1/runs`` with each new filter answers what the filter keeps (the issue's
    examples returned every row)."""
    client = make_client(auth_env())
    body = {"spec_path": "examples/smoke_human_workflow.yaml", "input": "go", "session_id": "s-9"}
    run = client.post("/v1/runs", json=body, headers=ADMIN).json()
    client.post("/v1/runs", json={**body, "session_id": "other"}, headers=ADMIN)

    def ids(**query: str) -> list[str]:
        answer = client.get("/v1/runs", params=query, headers=ADMIN)
        assert answer.status_code == 200, answer.text
        return [r["run_id"] for r in answer.json()["runs"]]

    assert ids(session_id="s-9") == [run["run_id"]]
    assert ids(has_error="true") == []
    assert len(ids(has_error="false")) == 2
    assert ids(q="no-such-text") == []
    assert ids(created_after="2030-01-01T00:00:00") == []
    assert len(ids(created_before="2030-01-01T00:00:00Z")) == 2
    assert len(ids(workflow_name="smoke-human-workflow", workflow_kind="sequential")) == 2
    assert len(ids(status="blocked")) == 2  # the original's word for paused
    assert ids(status="completed") == []
    assert len(ids(status="succeeded,paused")) == 2  # several: any of them
    assert ids(status="failed,expired,timed_out") == []
    several = client.get("/v1/runs", params={"status": "paused,nope"}, headers=ADMIN)
    assert several.status_code == 400 and several.json()["field"] == "status"
    assert "'nope'" in several.json()["message"]
    bad = client.get("/v1/runs", params={"created_after": "yesterday"}, headers=ADMIN)
    assert bad.status_code == 422 and "created_after" in bad.json()["message"]
    chain = client.get("/v1/sessions/s-9", headers=ADMIN).json()
    assert [r["run_id"] for r in chain["runs"]] == [run["run_id"]]
    assert client.get("/v1/sessions/none", headers=ADMIN).status_code == 404
    assert client.get(f"/v1/runs/{run['run_id']}", headers=ADMIN).json()["session_id"] == "s-9"


def test_version_health_and_the_original_key_header(make_client) -> None:
    client = make_client(auth_env())
    assert client.get("/v1/version").status_code == 401
    version = client.get("/v1/version", headers={"X-Kneo-Api-Key": KEYS["viewer"]}).json()
    assert version["api_version"] == "v1" and version["schema_revision"] == version["schema_head"]
    assert version["kneo_version"]
    wrong = client.get("/v1/version", headers={"X-Kneo-Api-Key": "not-a-key"})
    assert wrong.status_code == 401
    for probe in ("healthz", "livez", "readyz"):
        assert client.get(f"/v1/{probe}").json()["ok"] is True
