"""Browser journeys through the console in real headless Chromium (Debian's ``chromium``,
driven by Playwright; nothing downloads a browser). One live server (uvicorn on a free
loopback port, the real app, a real GitOps controller) and one browser serve the module's
journeys, which run in one xdist group: serially, on one worker.

The journeys take the screenshots in ``docs/console.md``; ``KNEO_UPDATE_SCREENSHOTS=1``
writes them to ``docs/images/`` (otherwise to a temporary directory, so a test run leaves
the work tree as it was).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from console_helpers import (
    ALL_KEYS,
    CHROMIUM,
    ROOT,
    VIEWPORT,
    browser_skip_reason,
    console_env,
    promotion_setup,
)
from live_server import LiveServer
from svc_helpers import headers

from tests import http_calls

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.environ.get("KNEO_UPDATE_SCREENSHOTS") == "1":
        return ROOT / "docs" / "images"
    return tmp_path_factory.mktemp("screenshots")


class LiveConsole:
    """The real app on uvicorn in this process, over a store with a promotion pending."""

    def __init__(self, root: Path) -> None:
        from kneo.platform import create_platform
        from kneo.service import create_app
        from kneo.settings import Settings

        self.store, self.controller, self.promotion = promotion_setup(root)
        self.cids: list[str] = []  # tasks a test made
        settings = Settings.from_env(
            {**console_env(), "KNEO_SERV_PROFILES_PATH": str(root / "profiles.json")}
        )
        self.manager = create_platform(settings=settings, store=self.store)
        app = create_app(
            False,
            settings=settings,
            manager=self.manager,
            start_worker=False,
            controller=self.controller,
            run_controller=True,
        )
        self.app = app
        self.live = LiveServer(app)
        self.url = self.live.url

    def api(self, method: str, path: str, role: str = "admin", **kw: Any) -> Any:

        return http_calls.request(method, self.url + path, headers=headers(role), timeout=30, **kw)

    def start(self, example: str, text: str = "launch") -> dict[str, Any]:
        body = self.api(
            "POST", "/v1/runs", json={"input": text, "spec_path": f"examples/{example}.yaml"}
        ).json()
        assert body["status"] == "paused", body
        return dict(body)

    def stop(self) -> None:
        self.live.stop()
        self.store.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveConsole]:
    reason = browser_skip_reason()
    if reason:
        pytest.skip(reason)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)  # the examples' spec paths and function modules
        server = LiveConsole(tmp_path_factory.mktemp("live"))
        yield server
        server.stop()


@pytest.fixture(scope="module")
def browser(live: LiveConsole) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def as_person(browser: Any, live: LiveConsole) -> Iterator[Any]:
    """``as_person(name)`` -> a signed-in page in its own browser context (own cookies)."""
    contexts: list[Any] = []

    def sign_in(
        name: str,
        *,
        shot: Path | None = None,
        on: LiveConsole | None = None,
        viewport: dict[str, int] = VIEWPORT,
    ) -> Any:
        url = (on or live).url
        context = browser.new_context(viewport=viewport)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.goto(url + "/ui/inbox")
        assert page.url.startswith(url + "/ui/login")
        page.fill("#api_key", ALL_KEYS[name])
        if shot is not None:
            page.screenshot(path=str(shot))
        page.click("button[type=submit]")
        page.wait_for_url("**/ui/inbox")
        return page

    yield sign_in
    for context in contexts:
        context.close()


@pytest.fixture
def crowded(live: LiveConsole, tmp_path: Path) -> Iterator[LiveConsole]:
    """A console of its own with 2,000 pending tasks of one workflow (copies of a real
    paused run, differing in their input), so the shared one's inbox stays short."""
    from inbox_fill import clone_paused

    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)
        server = LiveConsole(tmp_path)
        template = server.start("hitl_approval", "template")
        texts = [f"Quarterly review of account {i:04d} for the finance team" for i in range(2000)]
        texts[1234] = "Quarterly review of account 1234 for the zeppelin hangar"
        server.cids = clone_paused(server.store, template["run_id"], texts)
        yield server
        server.stop()


def test_reviewer_answers_typed_input(live: LiveConsole, as_person: Any, shots: Path) -> None:
    """Sign in as a reviewer -> the inbox shows the run paused by hitl_input.yaml ->
    invalid input shows the field error and the task stays pending -> valid input -> the
    run page shows succeeded."""
    live.start("hitl_approval")  # company in the inbox
    paused = live.start("hitl_input")
    live.start("hitl_tool_approval", "release notes")
    page = as_person("reviewer", shot=shots / "console-login.png")
    # this run's row (other tests of the module may have paused the same workflow)
    row = page.locator("tr", has=page.locator(f"a[href*='{paused['continuation_id']}']"))
    assert row.count() == 1 and "hitl-input" in row.inner_text()
    assert "Parameters for processing" in row.inner_text()
    page.screenshot(path=str(shots / "console-inbox.png"))

    row.locator("a").click()
    page.wait_for_url(f"**/ui/tasks/{paused['continuation_id']}*")
    page.fill("input[name='field.threshold']", "high")
    page.select_option("select[name='field.mode']", "strict")
    page.click("form.a-provided button[type=submit]")
    error = page.locator(".field.invalid .field-error")
    assert "threshold" in error.inner_text() and "number" in error.inner_text()
    assert page.input_value("input[name='field.threshold']") == "high"
    page.screenshot(path=str(shots / "console-task-input.png"), full_page=True)
    task = live.api("GET", f"/v1/human-tasks/{paused['continuation_id']}").json()
    assert task["status"] == "pending"

    page.fill("input[name='field.threshold']", "0.8")
    page.click("form.a-provided button[type=submit]")
    page.wait_for_url(f"**/ui/runs/{paused['run_id']}")
    assert page.locator(".run-status").inner_text() == "succeeded"
    assert '"threshold": 0.8' in page.locator("pre.output").last.inner_text()
    assert "human_decision" in page.locator("ol.timeline").inner_text()


def test_tool_call_runs_once_with_edited_arguments(
    live: LiveConsole, as_person: Any, shots: Path, tmp_path: Path, monkeypatch: Any
) -> None:
    counter = tmp_path / "calls"
    monkeypatch.setenv("KNEO_HITL_COUNTER", str(counter))
    paused = live.start("hitl_tool_approval")
    page = as_person("reviewer")
    page.goto(live.url + f"/ui/tasks/{paused['continuation_id']}")
    arguments = page.locator("table.args").inner_text()
    assert "team@example.com" in arguments  # a decider sees the address it will write to
    edited = {"to": "ops@example.com", "subject": "Edited by a person"}
    page.fill("form.a-edited textarea[name=content]", json.dumps(edited))
    page.click("form.a-edited button[type=submit]")
    page.wait_for_url(f"**/ui/runs/{paused['run_id']}")
    assert page.locator(".run-status").inner_text() == "succeeded"
    output = page.locator("pre.output").last.inner_text()
    assert output == "Done: sent to ops@example.com: Edited by a person"
    assert counter.read_text().splitlines() == ["send_email"]


def test_a_tool_call_approval_shows_why_the_agent_asks(
    live: LiveConsole, as_person: Any, shots: Path
) -> None:
    """The model's message that made the call and the earlier tool call's result are on the
    page, next to the buttons: planted text visible to a reviewer, a planted secret not."""
    paused = live.start("hitl_tool_context", "release notes PLANTED-WORDS password=hunter2planted")
    page = as_person("reviewer")
    page.goto(live.url + f"/ui/tasks/{paused['continuation_id']}")
    words = page.locator("blockquote.agent-words").inner_text()
    assert words.startswith("The lookup says: the release team") and "PLANTED-WORDS" in words
    earlier = page.locator("li.msg-tool", has_text="lookup_on_call")
    assert earlier.count() == 1 and "PLANTED-WORDS" in earlier.inner_text()
    assert "team@example.com" in earlier.inner_text()  # personal data: a decider sees it
    marked = page.locator("li.msg.marked")
    assert "send_email" in marked.inner_text() and marked.is_visible()
    assert page.locator("form.a-approved button").is_visible()
    assert "hunter2planted" not in page.content() and "[REDACTED]" in words
    page.screenshot(path=str(shots / "console-task-tool-approval.png"), full_page=True)
    page.click("form.a-approved button[type=submit]")
    page.wait_for_url(f"**/ui/runs/{paused['run_id']}")
    assert page.locator(".run-status").inner_text() == "succeeded"
    said = page.locator("ol.conversation").inner_text().lower()  # (labels in capitals)
    assert said.index("result of lookup_on_call") < said.index("result of send_email")
    assert "hunter2planted" not in page.content()
    page.screenshot(path=str(shots / "console-run.png"), full_page=True)


def test_search_finds_one_task_among_two_thousand(
    crowded: LiveConsole, as_person: Any, shots: Path
) -> None:
    """Every row reads "Approve the draft?": the line under it (the run's input) tells them
    apart, and a word of one task's input finds it."""
    page = as_person("reviewer", on=crowded)
    rows = page.locator("table.tasks tbody tr")
    assert rows.count() == 50
    previews = page.locator("td.prompt .preview").all_inner_texts()
    assert len(set(previews)) == 49 and previews[0] == "template"  # (the promotion has none)
    page.fill("input[name=q]", "Zeppelin")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**/ui/inbox?q=Zeppelin*")
    assert rows.count() == 1
    row = rows.first
    assert "Approve the draft?" in row.inner_text() and "zeppelin hangar" in row.inner_text()
    page.screenshot(path=str(shots / "console-inbox-search.png"), full_page=True)
    row.locator("a").click()
    page.wait_for_url(f"**/ui/tasks/{crowded.cids[1234]}*")
    assert "zeppelin hangar" in page.locator(".task-context").inner_text()


def test_caller_runs_an_external_tool_and_types_its_result(
    live: LiveConsole, as_person: Any, shots: Path
) -> None:
    """External execution: the page shows the call, the result typed in the form is checked
    against the tool's result schema, and the agent finishes with it."""
    paused = live.start("hitl_external", "disk full on db-1")
    page = as_person("reviewer")
    page.goto(live.url + f"/ui/tasks/{paused['continuation_id']}")
    arguments = page.locator("table.args").inner_text()
    assert "disk full on db-1" in arguments and "high" in arguments
    page.fill("form.a-provided textarea[name=content]", '{"ticket": "OPS-42"}')
    page.screenshot(path=str(shots / "console-task-external.png"), full_page=True)
    page.click("form.a-provided button[type=submit]")
    page.wait_for_url(f"**/ui/runs/{paused['run_id']}")
    assert page.locator(".run-status").inner_text() == "succeeded"
    assert page.locator("pre.output").last.inner_text() == 'Filed: {"ticket": "OPS-42"}'


def test_viewer_sees_no_controls_and_a_forged_post_is_403(
    live: LiveConsole, as_person: Any
) -> None:
    paused = live.start("hitl_approval")
    page = as_person("viewer")
    page.goto(live.url + f"/ui/tasks/{paused['continuation_id']}")
    assert page.locator("input[name=decision]").count() == 0
    assert "may look but not decide" in page.inner_text("main")
    csrf = page.locator("input[name=csrf_token]").first.get_attribute("value")
    rid = paused["metadata"]["pending_human_request"]["request_id"]
    forged = page.request.post(
        live.url + f"/ui/tasks/{paused['continuation_id']}",
        form={"csrf_token": csrf or "", "request_id": rid, "decision": "approved"},
        max_redirects=0,
    )
    assert forged.status == 403 and "human:write" in forged.text()
    task = live.api("GET", f"/v1/human-tasks/{paused['continuation_id']}").json()
    assert task["status"] == "pending"


def test_two_reviewers_promote_and_the_registry_shows_it_active(
    live: LiveConsole, as_person: Any, shots: Path
) -> None:
    cid = live.promotion
    alice, bob = as_person("alice"), as_person("bob")
    alice.locator(f"a[href='/ui/promotions/{cid}']").click()
    alice.wait_for_url(f"**/ui/promotions/{cid}")
    assert "0 of 2 needed" in alice.inner_text("main")
    alice.screenshot(path=str(shots / "console-promotion.png"), full_page=True)
    alice.fill("textarea[name=content]", "Prompt change reviewed.")
    alice.click("button[value=approved]")  # htmx posts it; the page reloads after
    alice.get_by_text("1 of 2 needed").wait_for()
    bob.goto(live.url + f"/ui/promotions/{cid}")
    bob.click("button[value=approved]")
    bob.get_by_text("Outcome: approved").wait_for()
    # The decision woke the controller in the service; the registry shows prod at r2.
    deadline = time.monotonic() + 20
    while True:
        bob.goto(live.url + "/ui/registry")
        cell = bob.locator("table.registry tr", has_text="mailer").locator("td").last
        if re.search(r"r2\b", cell.inner_text()) and "awaits approval" not in cell.inner_text():
            break
        assert time.monotonic() < deadline, cell.inner_text()
        time.sleep(0.2)
    assert "Ready=True" in cell.inner_text()
    bob.screenshot(path=str(shots / "console-registry.png"), full_page=True)


def test_the_schedules_page_opens_from_the_nav_without_errors(
    live: LiveConsole, as_person: Any
) -> None:
    """The nav's Schedules link opens the page under the console's CSP with no error in the
    browser's console (a script or style refused, a failed request); no active revision of
    the live project declares a schedule, so it says so."""
    page = as_person("operator")
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.locator("header nav a", has_text="Schedules").click()
    page.wait_for_url("**/ui/schedules")
    assert "No schedules" in page.inner_text("#schedules")
    assert page.locator("link[rel=stylesheet]").count() == 1
    assert page.evaluate("getComputedStyle(document.querySelector('.card')).borderRadius") != "0px"
    assert errors == []


def _expired_cookie(live: LiveConsole, name: str) -> str:
    """A session cookie for ``name`` as signing in nine hours ago made it (sessions last
    eight): what the browser holds when a reviewer comes back from lunch."""
    import itsdangerous.timed
    from console_helpers import console_auth

    from kneo.console.session import Session

    codec = console_auth(live.app).codec
    found = console_auth(live.app).authenticator.named(name)
    session = Session(csrf="old-token", name=name, proof=codec.proof(found[1] if found else b""))
    signer = itsdangerous.timed.TimestampSigner
    now = signer.get_timestamp
    signer.get_timestamp = lambda self: now(self) - 9 * 3600  # type: ignore[method-assign]
    try:
        return codec.dumps(session)
    finally:
        signer.get_timestamp = now  # type: ignore[method-assign]


def test_a_decision_after_expiry_keeps_the_typed_answer(
    live: LiveConsole, as_person: Any, shots: Path
) -> None:
    """Typed, the session expired meanwhile, submitted: sign in again, the answer is still
    in the box, one more click applies it once."""
    paused = live.start("hitl_approval", "expiring draft")
    page = as_person("reviewer")
    page.goto(live.url + f"/ui/tasks/{paused['continuation_id']}")
    typed = "Typed before lunch: ship it with the new title."
    page.fill("form.a-edited textarea[name=content]", typed)
    host = live.url.removeprefix("http://").split(":")[0]
    page.context.add_cookies(
        [{"name": "kneo_console", "value": _expired_cookie(live, "reviewer"),
          "domain": host, "path": "/ui"}]
    )  # fmt: skip
    page.click("form.a-edited button[type=submit]")
    page.locator("#api_key").wait_for()
    assert "Your session ended before your answer was sent" in page.inner_text("main")
    page.screenshot(path=str(shots / "console-session-ended.png"), full_page=True)
    page.fill("#api_key", ALL_KEYS["reviewer"])
    page.click("main button[type=submit]")
    page.locator("form.a-edited textarea[name=content]").wait_for()
    assert page.input_value("form.a-edited textarea[name=content]") == typed
    assert "Signed in again" in page.inner_text("main")
    task = live.api("GET", f"/v1/human-tasks/{paused['continuation_id']}").json()
    assert task["status"] == "pending"  # nothing was decided on the way
    page.click("form.a-edited button[type=submit]")
    page.wait_for_url(f"**/ui/runs/{paused['run_id']}")
    assert page.locator(".run-status").inner_text() == "succeeded"
    assert typed in page.inner_text("main")  # the decision's content, in its list
    audit = live.api(
        "GET",
        "/v1/audit-events",
        params={"run_id": paused["run_id"], "event_type": "human.decision"},
    ).json()["events"]
    assert [(e["actor"], e["payload"]["decision"]) for e in audit] == [("reviewer", "edited")]


def test_a_network_error_says_so_and_keeps_the_form(live: LiveConsole, as_person: Any) -> None:
    paused = live.start("hitl_approval", "flaky network")
    page = as_person("reviewer")
    page.goto(live.url + f"/ui/tasks/{paused['continuation_id']}")
    typed = "Sent over a bad line."
    box = "form.a-edited textarea[name=content]"
    page.fill(box, typed)

    def drop_posts(route: Any) -> None:
        if route.request.method == "POST":
            route.abort("internetdisconnected")
        else:
            route.continue_()

    page.route("**/ui/tasks/**", drop_posts)
    page.click("form.a-edited button[type=submit]")
    note = page.locator("form.a-edited .net-error")
    note.wait_for()
    assert "Not sent: the network failed" in note.inner_text()
    assert page.input_value(box) == typed and "/ui/tasks/" in page.url
    assert page.locator("form.a-edited button[type=submit]").is_enabled()
    task = live.api("GET", f"/v1/human-tasks/{paused['continuation_id']}").json()
    assert task["status"] == "pending"
    page.unroute("**/ui/tasks/**", drop_posts)
    page.click("form.a-edited button[type=submit]")
    page.wait_for_url(f"**/ui/runs/{paused['run_id']}")
    assert page.locator(".run-status").inner_text() == "succeeded"


def test_every_page_fits_a_phone(live: LiveConsole, as_person: Any, shots: Path) -> None:
    """At a 390 px wide viewport no page is wider than the screen (``scrollWidth``): long
    digests, commits, ids, arguments and comments wrap or scroll inside their box."""
    tasks = {
        example: live.start(example, text)
        for example, text in (
            ("hitl_approval", "phone"),
            ("hitl_input", "phone"),
            ("hitl_tool_context", "release notes " + "averyveryverylongwordwithoutanybreak" * 3),
            ("hitl_external", "disk full on db-1"),
            ("hitl_review", "phone"),
        )
    }
    live.api(
        "POST",
        f"/v1/human-tasks/{tasks['hitl_review']['continuation_id']}/resume",
        json={"request_id": tasks["hitl_review"]["request_id"], "decision": "rejected",
              "content": "A comment " + "withaverylongunbrokenwordinside" * 4},
    )  # fmt: skip
    page = as_person("reviewer", viewport=PHONE)
    paths = [
        "/ui/inbox",
        "/ui/inbox?q=phone",
        "/ui/registry",
        "/ui/registry/mailer/prod",
        "/ui/schedules",
        f"/ui/promotions/{live.promotion}",
        "/ui/tasks/cont_does_not_exist",
        *(f"/ui/tasks/{t['continuation_id']}" for t in tasks.values()),
        *(f"/ui/runs/{t['run_id']}" for t in tasks.values()),
    ]
    too_wide = {}
    for path in paths:
        page.goto(live.url + path)
        width = page.evaluate("document.documentElement.scrollWidth")
        if width > PHONE["width"]:
            too_wide[path] = width
    assert too_wide == {}
    page.goto(live.url + f"/ui/promotions/{live.promotion}")
    page.screenshot(path=str(shots / "console-phone-promotion.png"), full_page=True)
    page.context.clear_cookies()
    page.goto(live.url + "/ui/login")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def test_the_inbox_refresh_keeps_the_page_on_304_and_shows_a_new_task(
    live: LiveConsole, as_person: Any
) -> None:
    """The 5-second refresh asks with If-None-Match: unchanged, the server answers 304 and
    the rows stay; a new pause changes the ETag and the next refresh shows it."""
    live.start("hitl_approval", "first of two")
    page = as_person("reviewer")
    statuses: list[int] = []
    page.on("response", lambda r: statuses.append(r.status) if "/ui/inbox" in r.url else None)
    rows = page.locator("table.tasks tbody tr")
    shown = rows.count()
    assert shown >= 1
    # a refresh every 5 s; nothing changed, so one is a 304 (the ETag also turns with the
    # minute, for the rows' ages: a refresh across a minute's end is a 200, the next a 304)
    for _ in range(30):
        if 304 in statuses:
            break
        page.wait_for_timeout(500)
    assert 304 in statuses and rows.count() == shown
    paused = live.start("hitl_input", "second of two")
    page.locator(f"a[href*='{paused['continuation_id']}']").wait_for(timeout=12000)
    assert rows.count() == shown + 1 and 200 in statuses


def test_the_run_page_draws_the_graph_with_the_current_node(
    live: LiveConsole, as_person: Any, shots: Path
) -> None:
    """hitl_route.yaml pauses at its ``choose`` node: the run page's graph (drawn by the
    server, styled by the console's stylesheet under its CSP) shows ``draft`` visited,
    ``choose`` current and the branches not reached; after the person picks
    ``full_review`` the run is done, the branch taken is visited and nothing is current."""
    paused = live.start("hitl_route", "graph")
    page = as_person("viewer")
    page.goto(live.url + f"/ui/runs/{paused['run_id']}")
    states = {
        g.get_attribute("data-node"): g.get_attribute("data-state")
        for g in page.locator("svg.wf-graph g.node").all()
    }
    assert states == {
        "draft": "visited",
        "choose": "current",
        "fast_track": "pending",
        "full_review": "pending",
    }
    assert page.locator("#graph .graph-current").inner_text() == "choose"
    current = page.locator("svg.wf-graph g.node.current rect")
    assert current.evaluate("r => getComputedStyle(r).strokeWidth") == "3px"  # CSS applied
    assert page.locator("svg.wf-graph path.edge.taken").count() == 1  # draft -> choose
    labels = [t.text_content() for t in page.locator("svg.wf-graph text.edge-label").all()]
    assert 'equals "full_review"' in labels
    page.screenshot(path=str(shots / "console-run-graph.png"))

    request_id = paused["metadata"]["pending_human_request"]["request_id"]
    done = live.api(
        "POST",
        f"/v1/human-tasks/{paused['continuation_id']}/resume",
        json={"request_id": request_id, "decision": "selected", "selected_option": "full_review"},
    ).json()
    assert done["status"] == "succeeded", done
    page.reload()
    states = {
        g.get_attribute("data-node"): g.get_attribute("data-state")
        for g in page.locator("svg.wf-graph g.node").all()
    }
    assert states["full_review"] == "visited" and states["fast_track"] == "pending"
    assert page.locator("svg.wf-graph g.node.current").count() == 0
    assert page.locator("svg.wf-graph path.edge.taken").count() == 2


def test_a_session_shows_its_chain_and_each_run_opens_from_it(
    live: LiveConsole, as_person: Any, shots: Path
) -> None:
    """Three runs started in one session: the run page links to the session, whose page
    lists them in the order they were started (the decided one succeeded, the cancelled one
    says so), and a click on a run in the chain opens that run's page."""
    body = {"spec_path": "examples/hitl_approval.yaml", "session_id": "release-42"}
    runs = [
        live.api("POST", "/v1/runs", json={**body, "input": f"release 4.2 step {i}"}).json()
        for i in range(3)
    ]
    first = runs[0]
    request_id = first["metadata"]["pending_human_request"]["request_id"]
    decided = live.api(
        "POST",
        f"/v1/human-tasks/{first['continuation_id']}/resume",
        json={"request_id": request_id, "decision": "approved"},
    ).json()
    assert decided["status"] == "succeeded", decided
    live.api("POST", f"/v1/runs/{runs[1]['run_id']}/cancel")
    page = as_person("viewer")
    page.goto(live.url + f"/ui/runs/{runs[2]['run_id']}")
    page.click("#session-link")
    page.wait_for_url("**/ui/sessions/release-42")
    items = page.locator("ol.chain li.chain-run")
    assert [
        (item.get_attribute("data-run"), item.get_attribute("data-status")) for item in items.all()
    ] == [
        (runs[0]["run_id"], "succeeded"),
        (runs[1]["run_id"], "cancelled"),
        (runs[2]["run_id"], "paused"),
    ]
    page.screenshot(path=str(shots / "console-session-chain.png"))
    items.nth(1).locator("a").click()
    page.wait_for_url(f"**/ui/runs/{runs[1]['run_id']}")
    assert page.locator(".run-status").inner_text() == "cancelled"
    page.set_viewport_size(PHONE)
    page.goto(live.url + "/ui/sessions/release-42")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
