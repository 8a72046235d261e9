"""Agents answering as tools and workflows backing agents, paused and resumed through the
API over a real store (SQLite, and PostgreSQL when ``KNEO_TEST_DATABASE_URL`` is set): the
resume continues inside the nested unit, and its trace shows no completed model turn or step
running twice."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from svc_helpers import ROOT, auth_env, build_manager, headers

from kneo.service import create_app
from kneo.settings import Settings

SPEC: dict[str, Any] = {
    "version": "v1",
    "agent": {
        "name": "lead",
        "model": {
            "provider": "dummy",
            "script": [
                {"tool_calls": [{"name": "ask_helper", "arguments": {"input": "count these"}}]},
                {"text": "lead: {last_tool_result}"},
            ],
        },
        "tools": {"include": ["ask_helper"]},
        "policies": {"tool": {"allow": ["ask_helper"]}},
    },
    "workflow": {
        "steps": [
            {"id": "ask", "kind": "agent", "ref": "lead"},
            {"id": "review", "kind": "agent", "ref": "reviewer"},
        ]
    },
    "components": {
        "agents": {
            "helper": {
                "name": "helper",
                "model": {
                    "provider": "dummy",
                    "script": [
                        {"tool_calls": [{"name": "word_count", "arguments": {"text": "a b c"}}]},
                        {"text": "{last_tool_result} words"},
                    ],
                },
                "tools": {"include": ["word_count"]},
                "policies": {"tool": {"allow": ["word_count"]}},
                "approval_required": ["word_count"],
            },
            "reviewer": {"name": "reviewer", "workflow": "sign-off"},
        },
        "humans": {"chief": {"prompt": "Publish?"}},
        "tools": {"ask_helper": {"agent": "helper"}},
        "workflows": {"sign-off": {"steps": [{"id": "chief", "kind": "human", "ref": "chief"}]}},
    },
}


def _resume(client: Any, run: dict[str, Any], decision: str) -> dict[str, Any]:
    request_id = run["metadata"]["pending_human_request"]["request_id"]
    r = client.post(
        f"/v1/human-tasks/{run['continuation_id']}/resume",
        headers=headers("reviewer"),
        json={"request_id": request_id, "decision": decision},
    )
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


@pytest.fixture(params=["sqlite", "postgresql"])
def client(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    url = request.getfixturevalue("pg_database")() if request.param == "postgresql" else None
    monkeypatch.chdir(ROOT)
    settings = Settings.from_env(auth_env())
    manager = build_manager(settings, tmp_path, url)
    app = create_app(False, settings=settings, manager=manager, start_worker=False)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client
    manager.close()


def test_nested_pauses_resume_inside_and_nothing_runs_twice(client: TestClient) -> None:
    r = client.post("/v1/runs", headers=headers("operator"), json={"input": "go", "spec": SPEC})
    assert r.status_code == 200, r.text
    first = r.json()
    assert first["status"] == "paused"
    assert first["metadata"]["pending_human_request"]["kind"] == "tool_approval"
    second = _resume(client, first, "approved")
    assert second["status"] == "paused"  # now inside the workflow backing the reviewer
    assert second["metadata"]["pending_human_request"]["kind"] == "approval"
    done = _resume(client, second, "approved")
    assert done["status"] == "succeeded" and done["output_text"] == "lead: 3 words", done
    events = client.get(
        f"/v1/runs/{done['run_id']}/trace?limit=500", headers=headers("viewer")
    ).json()["events"]

    def unit(event: dict[str, Any]) -> str:
        return str(event["payload"].get("unit_key") or event["step_id"])

    turns = [
        (unit(e), e["payload"]["turn"]) for e in events if e["event_type"] == "model_turn_completed"
    ]
    assert sorted(turns) == sorted(set(turns)) and len(turns) == 4, turns
    assert {key for key, _ in turns} == {"ask", "ask/ask_helper#1"}
    completed = [unit(e) for e in events if e["event_type"] == "step_completed"]
    assert completed == ["ask", "review/chief", "review"], completed
