"""Binding assignments on the ways to decide through the service that
``tests/identity/test_binding_assignees.py`` does not drive itself: the console's form, a
Slack button and A2A's ``message/send`` (and the API's two routes, for the same request). A request assigned to someone
else is refused to the reviewer on each, naming the assignee, and the run stays paused; the
same request assigned to the reviewer is decided on each."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from svc_helpers import headers

from kneo.platform import create_platform
from kneo.service import create_app
from kneo.settings import Settings
from kneo.spec.project import ProjectContext
from tests.console.test_deadline_paths import WAYS, _env
from tests.mcp_tests.test_mcp_server import AUTH, KEYS


def _spec(assignee: str) -> dict[str, Any]:
    return {
        "version": "v1",
        "workflow": {
            "type": "sequential",
            "name": "bound",
            "steps": [{"id": "approve", "kind": "human", "ref": "gate"}],
        },
        "components": {"humans": {"gate": {"prompt": "Ship it?", "assignee": assignee}}},
    }


@pytest.mark.parametrize("way", sorted(WAYS))
def test_a_bound_request_is_refused_to_another_reviewer_on_each_way(
    service: Callable[..., Any], tmp_path: Path, way: str
) -> None:
    config = tmp_path / ".kneo" / "config.yaml"
    config.parent.mkdir(parents=True)
    config.write_text("version: v1\nname: bound\nassignments: {assignees: binding}\n")
    app, api = service(**_env(), KNEO_PROJECT_CONFIG=str(config))
    manager = app.state.manager
    started = {
        who: api.post(
            "/v1/runs", headers=headers("admin"), json={"input": "x", "spec": _spec(who)}
        ).json()
        for who in ("user:somebody-else", "reviewer")
    }
    status, said = WAYS[way](app, api, started["user:somebody-else"])
    assert status == 403 or (way == "slack" and "not_the_assignee" in said), (status, said)
    # the page and the chat reply name who may decide; the API's body (its code here; its
    # message is checked in tests/identity) says why
    assert (
        ("somebody-else" in said)
        if way in ("console", "decision-link", "slack")
        else (said == "not_the_assignee")
    ), said[:400]
    assert manager.store.runs.get_run(started["user:somebody-else"]["run_id"]).status == "paused"
    status, said = WAYS[way](app, api, started["reviewer"])
    assert status in (200, 303), (status, said[:400])
    assert manager.store.runs.get_run(started["reviewer"]["run_id"]).status == "succeeded"


def test_a_bound_request_is_refused_to_another_reviewer_over_a2a(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A2A's ``message/send`` answering a task's question: the same refusal, naming the code."""
    config = tmp_path / ".kneo" / "config.yaml"
    config.parent.mkdir(parents=True)
    config.write_text("version: v1\nname: bound\nassignments: {assignees: binding}\n")
    monkeypatch.chdir(tmp_path)
    env = {**AUTH, "KNEO_SERV_PROFILES_PATH": str(tmp_path / "p.json")}
    settings = Settings.from_env({**env, "KNEO_PROJECT_CONFIG": str(config)})
    manager = create_platform(settings, ProjectContext.discover(cwd=tmp_path, settings=settings))
    app = create_app(False, settings=settings, manager=manager, start_worker=False, a2a=True)
    try:
        with TestClient(app) as client:
            outcome = {}
            for who in ("user:somebody-else", "reviewer"):
                run = manager.run_from_spec(input_text="x", spec=_spec(who))
                answer = {
                    "decision": "approved",
                    "continuation_id": run.continuation_id,
                    "request_id": run.request_id,
                }
                message = {
                    "messageId": f"bound-{who}",
                    "role": "user",
                    "taskId": run.run_id,
                    "parts": [{"kind": "data", "data": answer}],
                }
                body = {"jsonrpc": "2.0", "id": 1, "method": "message/send"}
                outcome[who] = client.post(
                    "/a2a",
                    json={**body, "params": {"message": message}},
                    headers={"Authorization": f"Bearer {KEYS['reviewer']}"},
                ).json()
                outcome[who + ":status"] = manager.store.runs.get_run(run.run_id).status
    finally:
        manager.store.close()
    refused = outcome["user:somebody-else"]
    assert "not_the_assignee" in str(refused) and "somebody-else" in str(refused), refused
    assert outcome["user:somebody-else:status"] == "paused"
    assert "error" not in outcome["reviewer"] and outcome["reviewer:status"] == "succeeded"
