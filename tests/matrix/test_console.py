"""The console in every shape, for every role: each page (inbox, run, task, session chain,
registry, a bundle's history, schedules) renders for each of the host's roles,
``/ui/registry`` shows the controller's bundle wherever a controller runs, each project's
registry and schedules pages are its members' and a 404 to others, and a reviewer's decision
from the task page finishes the run.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest

from tests.matrix.shapes import TEAM_KEYS, Shape
from tests.service.svc_helpers import KEYS

pytestmark = pytest.mark.slow

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
IDEM = re.compile(r'name="idempotency_key" value="([^"]+)"')
SMOKE = "examples/smoke_human_workflow.yaml"


class Browser:
    """One person's cookie jar on the shape's console."""

    def __init__(self, shape: Shape, key: str) -> None:
        self.http = httpx2.Client(base_url=shape.url, timeout=60)
        page = self.http.get("/ui/login")
        token = CSRF.search(page.text)
        assert token, page.text[:500]
        signed = self.http.post(
            "/ui/login", data={"api_key": key, "csrf_token": token.group(1), "next": ""}
        )
        assert signed.status_code == 303, signed.text[:500]
        inbox = self.http.get("/ui/inbox", follow_redirects=True)
        self.csrf = CSRF.search(inbox.text).group(1)  # type: ignore[union-attr]

    def page(self, path: str) -> httpx2.Response:
        """``path`` as a browser ends up showing it (an unprefixed page may send a person
        whose grants span projects to the project's own URL)."""
        return self.http.get(path, follow_redirects=True)

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def paused(shape: Shape) -> Iterator[dict[str, Any]]:
    session = f"console-{shape.name}-{id(shape)}"
    answer = shape.post(
        "/v1/runs", "operator", {"input": "console", "spec_path": SMOKE, "session_id": session}
    )
    assert answer.status_code == 200, answer.text
    yield {**answer.json(), "session_id": session}


@pytest.mark.parametrize("role", sorted(KEYS))
def test_every_page_renders_for_every_role(shape: Shape, paused: dict[str, Any], role: str) -> None:
    person = Browser(shape, KEYS[role])
    try:
        pages = {
            "/ui/inbox": paused["continuation_id"],
            f"/ui/runs/{paused['run_id']}": paused["run_id"],
            f"/ui/tasks/{paused['continuation_id']}": "Approve the smoke draft?",
            f"/ui/sessions/{paused['session_id']}": paused["run_id"],
            "/ui/registry": "helper" if shape.controller else "",
            "/ui/registry/helper/dev": "helper",
            "/ui/schedules": "Schedules",
        }
        for path, shows in pages.items():
            page = person.page(path)
            if path == "/ui/registry/helper/dev" and not shape.controller:
                assert page.status_code in (200, 404), (path, page.status_code)
                continue
            assert page.status_code == 200, (role, path, page.status_code, page.text[:800])
            assert shows in page.text, (role, path)
    finally:
        person.close()


#: who may enter which project's pages in the two-projects shape
HOLDS = {
    "plat": {"default", "team-a", "team-b"},
    "a-op": {"team-a"},
    "b-op": {"team-b"},
    "operator": {"default"},
    "viewer": {"default"},
}


@pytest.mark.xdist_group("matrix-two-projects")
@pytest.mark.parametrize("who", sorted(HOLDS))
def test_each_projects_registry_is_its_members(two_projects: Shape, who: str) -> None:
    shape = two_projects
    key = KEYS[who] if who in KEYS else TEAM_KEYS[who][0]
    person = Browser(shape, key)
    try:
        for project in (*shape.projects, "nobody"):
            page = person.page(f"/ui/p/{project}/registry")
            schedules = person.page(f"/ui/p/{project}/schedules")
            if project not in HOLDS[who]:
                assert page.status_code == 404, (who, project, page.status_code)
                assert schedules.status_code == 404, (who, project, schedules.status_code)
                continue
            assert page.status_code == 200, (who, project, page.text[:800])
            assert schedules.status_code == 200, (who, project, schedules.text[:800])
            bundle = "helper" if project == "default" else f"{project}-bot"
            assert bundle in page.text, (who, project)
    finally:
        person.close()


def test_a_decision_from_the_task_page_finishes_the_run(
    shape: Shape, paused: dict[str, Any]
) -> None:
    cid = paused["continuation_id"]
    rid = paused["metadata"]["pending_human_request"]["request_id"]
    reviewer = Browser(shape, KEYS["reviewer"])
    try:
        form = reviewer.page(f"/ui/tasks/{cid}")
        key = IDEM.search(form.text)
        assert key, form.text[:800]
        decided = reviewer.http.post(
            f"/ui/tasks/{cid}",
            data={"csrf_token": reviewer.csrf, "request_id": rid, "decision": "approved",
                  "idempotency_key": key.group(1)},
        )  # fmt: skip
        assert decided.status_code == 303, decided.text[:800]
    finally:
        reviewer.close()
    assert shape.settled(paused["run_id"]) == "succeeded"
