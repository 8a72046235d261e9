"""Console sign-in at a real OpenID provider (``oidc-provider`` on loopback) in real headless
Chromium: the provider's own login page, the inbox as a reviewer by group, a decision, and
sign-out that makes the old cookie worthless. The server-side refusals (state, flow, roles)
are checked over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from oidc_helpers import ADMIN, CHROMIUM, Live, sign_in_at_provider

from tests import http_calls

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("playwright is not installed")
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)
        server = Live(tmp_path_factory.mktemp("live"))
        yield server
        server.stop()


@pytest.fixture(scope="module")
def browser(live: Live) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        launched.close()


def test_a_reviewer_by_group_signs_in_decides_and_signs_out(browser: Any, live: Live) -> None:
    paused = live.start_run("hitl_approval", "oidc journey")
    page = sign_in_at_provider(browser, live, "alice")
    assert "alice@example.com" in page.content()  # the person, not a key
    page.goto(live.url + f"/ui/tasks/{paused['continuation_id']}")
    page.click("form.a-approved button[type=submit]")
    page.wait_for_url(f"**/ui/runs/{paused['run_id']}")  # the decision landed (htmx swaps)
    run = http_calls.get(
        live.url + f"/v1/runs/{paused['run_id']}",
        headers={"Authorization": f"Bearer {ADMIN}"},
        timeout=10,
    ).json()
    assert run["status"] != "paused", run
    audit = http_calls.get(
        live.url + "/v1/audit-events",
        params={"run_id": paused["run_id"]},
        headers={"Authorization": f"Bearer {ADMIN}"},
        timeout=10,
    ).json()
    mine = [e for e in audit["events"] if e.get("actor") == "alice@example.com"]
    assert mine, audit
    # the audit names the person: who (the provider's subject), how, which group gave the right
    identity = mine[0]["payload"]["identity"]
    assert identity["subject"] == "alice" and identity["method"] == "oidc_session"
    assert identity["roles_from"] == ["group:release-managers"]
    cookies = page.context.cookies()
    session = next(c for c in cookies if c["name"] == "kneo_console")
    page.click("form.who button[type=submit]")  # sign out
    page.wait_for_url("**/ui/login**")
    copied = http_calls.get(
        live.url + "/ui/inbox",
        cookies={"kneo_console": session["value"]},
        follow_redirects=False,
        timeout=10,
    )
    assert copied.status_code == 303 and "/ui/login" in copied.headers["location"]


def test_mine_includes_what_my_groups_are_assigned(browser: Any, live: Live) -> None:
    """A task assigned to ``group:release-managers`` is in alice's *Mine*, not in carol's."""
    import yaml

    spec = yaml.safe_load((ROOT / "examples" / "hitl_approval.yaml").read_text())
    spec["components"]["humans"]["reviewer"]["assignee"] = "group:release-managers"
    spec["components"]["humans"]["reviewer"]["prompt"] = "Group-assigned draft?"
    body = http_calls.post(
        live.url + "/v1/runs",
        headers={"Authorization": f"Bearer {ADMIN}"},
        json={"input": "for the group", "spec": spec},
        timeout=30,
    ).json()
    assert body["status"] == "paused", body
    for person, sees in (("alice", True), ("carol", False)):
        page = sign_in_at_provider(browser, live, person)
        page.goto(live.url + "/ui/inbox?assignee=mine")
        assert ("Group-assigned draft?" in page.inner_text("main")) is sees, person
        page.goto(live.url + "/ui/inbox")  # everything: carol sees it there
        assert "Group-assigned draft?" in page.inner_text("main")


def test_a_person_without_a_role_is_refused_at_sign_in(browser: Any, live: Live) -> None:
    """carol's only group (interns) maps to viewer: she gets in but sees no decision forms;
    with a map that names none of her groups she would be refused (checked over HTTP)."""
    paused = live.start_run("hitl_approval", "carol looks")
    page = sign_in_at_provider(browser, live, "carol")
    page.goto(live.url + f"/ui/tasks/{paused['continuation_id']}")
    assert page.locator("form.a-approved").count() == 0


def test_the_callback_refuses_a_forged_or_stale_answer(live: Live) -> None:
    with httpx2.Client(base_url=live.url, follow_redirects=False, timeout=10) as client:
        stale = client.get("/ui/oidc/callback", params={"code": "x", "state": "y"})
        assert stale.status_code == 401 and "start it again" in stale.text
        started = client.get("/ui/oidc/login")
        assert started.status_code == 303
        assert started.headers["location"].startswith(live.idp.issuer)
        assert "code_challenge_method=S256" in started.headers["location"]
        forged = client.get("/ui/oidc/callback", params={"code": "x", "state": "not-ours"})
        assert forged.status_code == 401 and "state does not match" in forged.text
        refused = client.get(
            "/ui/oidc/callback", params={"error": "access_denied", "state": "whatever"}
        )
        assert refused.status_code == 401
