"""Two teams on one service: their keys, an approval spec sent inline, and a paused run."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

#: key name -> (key, roles): one operator and one reviewer per team, a member of both, a
#: platform administrator.
KEYS: dict[str, tuple[str, str]] = {
    "a-op": ("key-a-operator-1", "operator@team-a"),
    "a-rev": ("key-a-reviewer-2", "reviewer@team-a"),
    "b-op": ("key-b-operator-3", "operator@team-b"),
    "b-rev": ("key-b-reviewer-4", "reviewer@team-b"),
    "both": ("key-both-5", "operator@team-a,viewer@team-b"),
    "plat": ("key-platform-6", "platform-admin"),
    "dflt": ("key-default-7", "operator"),
}


def headers(who: str, project: str | None = None) -> dict[str, str]:
    out = {"Authorization": f"Bearer {KEYS[who][0]}"}
    if project is not None:
        out["X-Kneo-Project"] = project
    return out


#: An agent drafts (the dummy provider), a person approves: sent inline, as a project's
#: caller does (a spec file on the server is the host's, not a project's).
APPROVAL = {
    "version": "v1",
    "agent": {
        "name": "writer",
        "system_prompt": "Write a note.",
        "model": {"provider": "dummy", "name": "dummy", "script": [{"text": "A draft."}]},
        "tools": {"include": []},
    },
    "workflow": {
        "type": "sequential",
        "name": "approval",
        "steps": [
            {"id": "draft", "kind": "agent", "ref": "writer"},
            {"id": "approve", "kind": "human", "ref": "reviewer"},
        ],
    },
    "components": {"humans": {"reviewer": {"prompt": "Approve?", "assignee": "reviewer"}}},
}


def paused_run(client: TestClient, who: str, project: str | None = None) -> dict[str, Any]:
    body = client.post(
        "/v1/runs", headers=headers(who, project), json={"input": "hello", "spec": APPROVAL}
    )
    assert body.status_code in (200, 201), body.text
    run = body.json()
    assert run["status"] == "paused", run
    return dict(run)
