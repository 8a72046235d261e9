"""Two teams in the console, in real headless Chromium (Debian's ``chromium`` driven by
Playwright; nothing downloads a browser): a member of both projects switches between them
and decides in team-b; a member of one sees no switcher and gets the 404 page for the other
project's task. One live server (uvicorn on a free loopback port, the real app) serves the
module; it runs in the ``browser`` xdist group, serially.

``KNEO_UPDATE_SCREENSHOTS=1`` writes the switcher's screenshot to ``docs/images/``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from console_helpers import CHROMIUM, VIEWPORT, browser_skip_reason
from live_server import LiveServer
from projects_helpers import APPROVAL, KEYS, ROOT, TEAMS, auth, teams_env

from kneo.platform import create_platform
from kneo.service import create_app
from kneo.settings import Settings
from kneo.spec.project import ProjectContext
from kneo.store import open_store
from tests import http_calls

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]


class LiveTeams:
    """The real app on uvicorn in this process, with team-a and team-b and a paused run in
    each."""

    def __init__(self, root: Path) -> None:
        settings = Settings.from_env(teams_env(root))
        store = open_store(None, settings=settings, state_dir=root / "state")
        context = ProjectContext.discover(settings=settings)
        self.manager = create_platform(settings, context, store=store)
        app = create_app(False, settings=settings, manager=self.manager, start_worker=False)
        self.live = LiveServer(app)
        self.url = self.live.url
        for name in TEAMS:
            created = self.api("POST", "/v1/projects", json={"name": name})
            assert created.status_code == 201, created.text
        self.runs = {p: self.start(p, f"note for {p}") for p in ("default", *TEAMS)}

    def api(self, method: str, path: str, project: str | None = None, **kw: Any) -> Any:
        return http_calls.request(
            method, self.url + path, headers=auth("plat", project), timeout=30, **kw
        )

    def start(self, project: str, text: str) -> dict[str, Any]:
        answer = self.api("POST", "/v1/runs", project, json={"input": text, "spec": APPROVAL})
        assert answer.status_code in (200, 201), answer.text
        return dict(answer.json())

    def stop(self) -> None:
        self.live.stop()
        self.manager.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveTeams]:
    reason = browser_skip_reason()
    if reason:
        pytest.skip(reason)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)
        server = LiveTeams(tmp_path_factory.mktemp("teams"))
        yield server
        server.stop()


@pytest.fixture(scope="module")
def browser(live: LiveTeams) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright  # skipped above when it is missing

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def signed_in(browser: Any, live: LiveTeams) -> Iterator[Any]:
    """``signed_in(who)`` -> a page signed in as key ``who``, in its own browser context."""
    contexts: list[Any] = []

    def sign_in(who: str) -> Any:
        context = browser.new_context(viewport=VIEWPORT)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.goto(live.url + "/ui/inbox")
        assert page.url.startswith(live.url + "/ui/login")
        page.fill("#api_key", KEYS[who][0])
        page.click("button[type=submit]")
        page.wait_for_url("**/inbox")
        return page

    yield sign_in
    for context in contexts:
        context.close()


def shots(tmp_path: Path) -> Path:
    return (
        ROOT / "docs" / "images" if os.environ.get("KNEO_UPDATE_SCREENSHOTS") == "1" else tmp_path
    )


def test_a_member_of_both_switches_projects_and_decides_in_team_b(
    live: LiveTeams, signed_in: Any, tmp_path: Path
) -> None:
    a_task, b_task = (live.runs[p]["continuation_id"] for p in TEAMS)
    page = signed_in("both")
    assert page.url == live.url + "/ui/p/team-a/inbox"  # home: the first project granted
    switcher = page.locator("#projects")
    assert switcher.locator("summary").inner_text() == "Project team-a"
    assert page.locator(f"a[href*='{a_task}']").count() == 1
    assert page.locator(f"a[href*='{b_task}']").count() == 0
    switcher.locator("summary").click()
    names = switcher.locator("li a").all_inner_texts()
    assert names == ["team-a", "team-b"]  # only the projects granted: not default
    page.screenshot(path=str(shots(tmp_path) / "console-projects.png"))
    switcher.locator("li a", has_text="team-b").click()
    page.wait_for_url("**/ui/p/team-b/inbox")
    assert page.locator("#projects summary").inner_text() == "Project team-b"
    assert page.locator(f"a[href*='{a_task}']").count() == 0
    row = page.locator("tr", has=page.locator(f"a[href*='{b_task}']"))
    assert row.count() == 1
    row.locator("a").first.click()
    page.wait_for_url(f"**/ui/p/team-b/tasks/{b_task}*")
    page.click("form.a-approved button[type=submit]")
    run_id = live.runs["team-b"]["run_id"]
    page.wait_for_url(f"**/ui/p/team-b/runs/{run_id}")
    assert page.locator(".run-status").inner_text() == "succeeded"
    # a page without a project opens the last one viewed
    page.goto(live.url + "/ui/inbox")
    page.wait_for_url("**/ui/p/team-b/inbox")
    assert live.api("GET", f"/v1/human-tasks/{a_task}", "team-a").json()["status"] == "pending"


def test_a_member_of_one_project_sees_no_switcher_and_a_404_for_the_others_task(
    live: LiveTeams, signed_in: Any
) -> None:
    a_task = live.runs["team-a"]["continuation_id"]
    b_task = live.runs["team-b"]["continuation_id"]
    page = signed_in("a-rev")
    assert page.url == live.url + "/ui/inbox"  # one project: the pages as before
    assert page.locator("#projects").count() == 0
    assert page.locator(f"a[href='/ui/tasks/{a_task}']").count() >= 1
    assert page.locator(f"a[href*='{b_task}']").count() == 0
    for path, code in (
        (f"/ui/p/team-b/tasks/{b_task}", "project_not_found"),
        (f"/ui/tasks/{b_task}", "not_found"),
    ):
        answer = page.goto(live.url + path)
        assert answer is not None and answer.status == 404
        assert page.locator("h1").inner_text() == f"404 · {code}"
    page.click("text=Back to the inbox")
    page.wait_for_url("**/ui/inbox")
    assert page.locator(f"a[href*='{a_task}']").count() >= 1
