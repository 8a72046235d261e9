"""``Idempotency-Key`` is declared in the OpenAPI document on exactly the operations that
honour it: a route reads the key only through the dependency that declares it
(:data:`kneo.service.idempotency.IDEMPOTENT`), and docs/service_api.md lists the same."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from kneo.service import create_app
from kneo.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SMOKE = "examples/smoke_human_workflow.yaml"


def declaring(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method, op in item.items()
        if any(p.get("name") == "Idempotency-Key" for p in op.get("parameters", []))
    }


def test_the_document_declares_the_key_where_the_guide_says_it_is_honoured() -> None:
    document = create_app(configure_default_manager=False, settings=Settings()).openapi()
    section = (ROOT / "docs" / "service_api.md").read_text().split("## Idempotency")[1]
    listed = set(re.findall(r"`(POST) (/v1/[^`]+)`", section.split("\n## ")[0]))
    listed = {(m, re.sub(r"\{id\}", "{continuation_id}", p)) for m, p in listed}
    assert (
        declaring(document)
        == listed
        == {
            ("POST", "/v1/runs"),
            ("POST", "/v1/specs/run"),
            ("POST", "/v1/human-tasks/{continuation_id}/resume"),
            ("POST", "/v1/human-tasks/{continuation_id}/decisions"),
        }
    )
    committed = (ROOT / "docs" / "openapi.json").read_text()
    assert committed.count('"name": "Idempotency-Key"') == len(listed)


def test_each_declared_operation_replays_under_its_key(make_client: Any) -> None:
    client = make_client()
    runs = {}
    for path in ("/v1/runs", "/v1/specs/run"):
        body = {"input": "hello", "spec_path": SMOKE, "target": "workflow"}
        key = {"Idempotency-Key": f"key-{path}"}
        first = client.post(path, json=body, headers=key)
        again = client.post(path, json=body, headers=key)
        assert first.status_code == again.status_code == 200, first.text
        assert again.headers.get("idempotent-replayed") == "true"
        assert again.json()["run_id"] == first.json()["run_id"]
        other = client.post(path, json={**body, "input": "other"}, headers=key)
        assert other.status_code == 409 and other.json()["error"] == "idempotency_key_conflict"
        runs[path] = first.json()
    run = runs["/v1/runs"]
    cid, rid = run["continuation_id"], run["request_id"]
    for path, body in (
        (f"/v1/human-tasks/{cid}/resume", {"request_id": rid, "decision": "approved"}),
        (
            f"/v1/human-tasks/{runs['/v1/specs/run']['continuation_id']}/decisions",
            {
                "decisions": [
                    {"request_id": runs["/v1/specs/run"]["request_id"], "decision": "approved"}
                ]
            },
        ),
    ):
        key = {"Idempotency-Key": f"decide-{path}"}
        first = client.post(path, json=body, headers=key)
        again = client.post(path, json=body, headers=key)
        assert first.status_code in (200, 202), first.text
        assert again.status_code == first.status_code
        assert again.headers.get("idempotent-replayed") == "true", again.text
