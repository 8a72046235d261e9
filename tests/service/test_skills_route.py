"""``GET /v1/skills``: the project's skills (``skills:`` in ``.kneo/config.yaml``), paged and
sorted by name, for callers who may read specs; a run over the API switches one on by name,
from its spec or its overlay, and stores what it was given."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from starlette.testclient import TestClient
from svc_helpers import auth_env, headers

from kneo.platform import create_platform
from kneo.service import create_app
from kneo.settings import Settings
from kneo.spec.project import ProjectContext
from kneo.store import open_store

NOTES = "Start with what changed for the reader.\n"
#: a key someone pasted into a skill's instructions
PLANTED = "sk-live-abcdefghijklmnop1234567890"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    root = tmp_path_factory.mktemp("skills-project")
    (root / "skills").mkdir()
    (root / "skills" / "NOTES.md").write_text(NOTES)
    (root / ".kneo").mkdir()
    config = {
        "version": "v1",
        "skills": {
            "release-notes": {"description": "Notes.", "instructions_file": "skills/NOTES.md"},
            "plain-english": {"instructions": "Be plain.", "tools": ["word_count"]},
            "leaky": {"instructions": f"Call with {PLANTED} and reply to ops@example.com."},
        },
    }
    (root / ".kneo" / "config.yaml").write_text(yaml.safe_dump(config))
    spec = {
        "version": "v1",
        "agent": {
            "name": "editor",
            "skills": ["plain-english"],
            "model": {"provider": "dummy", "script": [{"text": "done"}]},
        },
    }
    (root / "editor.yaml").write_text(yaml.safe_dump(spec))
    settings = Settings.from_env({**auth_env(), "KNEO_SERV_PROFILES_PATH": str(root / "p.json")})
    project = ProjectContext.discover(cwd=root, settings=settings)
    store = open_store(None, settings=settings, state_dir=root / "state")
    manager = create_platform(settings=settings, project=project, store=store)
    app = create_app(False, settings=settings, manager=manager, start_worker=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        with TestClient(app, raise_server_exceptions=False) as test_client:
            yield test_client
    store.close()


def _get(client: TestClient, role: str = "viewer", **params: Any) -> Any:
    return client.get("/v1/skills", params=params, headers=headers(role))


def test_the_catalog_pages_and_sorts_by_name(client: TestClient) -> None:
    answer = _get(client)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [s["name"] for s in body["skills"]] == ["leaky", "plain-english", "release-notes"]
    assert PLANTED not in answer.text and "ops@example.com" in answer.text  # not personal data
    assert body["skills"][2] == {
        "name": "release-notes",
        "description": "Notes.",
        "instructions": NOTES,
        "tools": [],
        "path": "skills/NOTES.md",
        "source": "project",
    }
    assert (body["count"], body["total"], body["offset"]) == (3, 3, 0)
    assert (body["sort_by"], body["sort_order"]) == ("name", "asc")
    page = _get(client, sort_order="desc", limit=1, offset=1).json()
    assert [s["name"] for s in page["skills"]] == ["plain-english"] and page["total"] == 3


def test_who_may_read_it_and_what_it_refuses(client: TestClient) -> None:
    assert _get(client, "reviewer").status_code == 403  # no specs:read
    assert client.get("/v1/skills").status_code == 401
    unknown = _get(client, q="notes")
    assert unknown.status_code == 422 and unknown.json()["error"] == "unknown_query_parameters"
    order = _get(client, sort_by="description")
    assert order.status_code == 400 and order.json()["field"] == "sort_by"


def test_a_run_switches_project_skills_on_by_spec_and_by_overlay(client: TestClient) -> None:
    started = client.post(
        "/v1/runs",
        headers=headers("operator"),
        json={"spec_path": "editor.yaml", "input": "x", "skills": {"add": ["release-notes"]}},
    )
    assert started.status_code == 200, started.text
    run = started.json()
    assert run["status"] == "succeeded"
    skills = run_spec_skills(client, run["run_id"])
    assert skills == {
        "plain-english": {"instructions": "Be plain.", "tools": ["word_count"]},
        "release-notes": {"description": "Notes.", "instructions": NOTES},
    }
    refused = client.post(
        "/v1/runs",
        headers=headers("operator"),
        json={"spec_path": "editor.yaml", "input": "x", "skills": {"add": ["nope"]}},
    )
    assert refused.status_code == 400 and refused.json()["error"] == "E_UNKNOWN_SKILL"
    inline = client.post(  # a document sent by the caller names them by name too
        "/v1/runs",
        headers=headers("operator"),
        json={"spec": yaml.safe_load((Path.cwd() / "editor.yaml").read_text()), "input": "x"},
    )
    assert inline.status_code == 200 and inline.json()["status"] == "succeeded", inline.text


def run_spec_skills(client: TestClient, run_id: str) -> Any:
    """The ``skills`` of the spec a run stored (what its agents were given)."""
    manager = client.app.state.manager  # type: ignore[attr-defined]
    return manager.store.runs.get_run(run_id).spec["skills"]
