"""docs/projects.md: its keys configure Kneo, and its requests, replayed in order against a
service with those keys, answer what the page says."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from kneo.platform import create_platform
from kneo.service import create_app
from kneo.settings import Settings
from kneo.spec.project import ProjectContext
from kneo.store import open_store

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "projects.md").read_text()


def _requests() -> list[tuple[str, str, dict[str, str], Any]]:
    out = []
    for block in re.findall(r"```http\n(.*?)```", DOC, re.S):
        head, _, body = block.partition("\n\n")
        line, *fields = head.strip().splitlines()
        method, path = line.split()
        headers = dict(field.split(": ", 1) for field in fields)
        out.append((method, path, headers, json.loads(body) if body.strip() else None))
    return out


@pytest.fixture
def service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.chdir(ROOT)
    block = re.search(r"```sh\n(.*?)```", DOC, re.S)
    assert block is not None
    env = dict(line.split("=", 1) for line in shlex.split(block.group(1)))
    settings = Settings.from_env(
        {**env, "KNEO_SERV_AUTH_ENABLED": "true", "KNEO_SERV_PROFILES_PATH": str(tmp_path / "p")}
    )
    store = open_store(None, settings=settings, state_dir=tmp_path / "state")
    manager = create_platform(settings, ProjectContext.discover(settings=settings), store=store)
    with TestClient(create_app(False, settings=settings, manager=manager)) as client:
        yield client
    manager.close()


def test_the_pages_requests_answer_what_it_says(service: TestClient) -> None:
    answers = []
    for method, path, headers, body in _requests():
        answer = service.request(method, path, headers=headers, json=body)
        assert answer.status_code in (200, 201), (method, path, answer.text)
        answers.append(answer.json())
    created, listed, updated, runs = answers
    assert created["name"] == "team-a" and created["definition"]["secrets"]
    service.post("/v1/projects", headers={"Authorization": "Bearer KEY-P"}, json={"name": "team-b"})
    listed = service.get("/v1/projects", headers={"Authorization": "Bearer KEY-L"}).json()
    assert [p["name"] for p in listed["projects"]] == ["team-a", "team-b"]
    assert listed["home"] == "team-a"
    prod = updated["definition"]["environments"]["prod"]["policy_enforcement"]
    assert prod["require_tool_permissions"] is True
    assert runs["runs"] == []
    assert (
        "definition"
        not in service.get("/v1/projects/team-a", headers={"Authorization": "Bearer KEY-L"}).json()
    )


def test_the_three_ways_to_name_a_project_agree(service: TestClient) -> None:
    admin = {"Authorization": "Bearer KEY-P"}
    service.post("/v1/projects", headers=admin, json={"name": "team-a"})
    key = {"Authorization": "Bearer KEY-A"}
    started = service.post(
        "/v1/runs",
        headers=key,
        json={
            "input": "x",
            "spec": {
                "version": "v1",
                "workflow": {
                    "type": "sequential",
                    "steps": [{"id": "ask", "kind": "human", "ref": "r"}],
                },
                "components": {"humans": {"r": {"prompt": "ok?"}}},
            },
        },
    )
    assert started.status_code == 200, started.text
    run = started.json()["run_id"]
    for headers, path in (
        (key, "/v1/runs"),
        ({**key, "X-Kneo-Project": "team-a"}, "/v1/runs"),
        (key, "/v1/projects/team-a/runs"),
    ):
        assert [r["run_id"] for r in service.get(path, headers=headers).json()["runs"]] == [run]
    other = service.get("/v1/runs", headers={"Authorization": "Bearer KEY-B"})
    assert other.status_code == 404 and other.json()["error"] == "project_not_found"
