"""Console sign-in at a real OpenID provider (``oidc-provider`` on loopback) in real headless
Chromium: the provider's own login page, the inbox as a reviewer by group, a decision, and
sign-out that makes the old cookie worthless. The server-side refusals (state, flow, roles)
are checked over HTTP."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from oidc_helpers import OpenIdProvider

from kneo.service import create_app

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/lib/chromium/chromium"
ADMIN = "identity-admin-key-0123456789"


class Live:
    """The real app on uvicorn in this process, its console registered at the provider."""

    def __init__(self, root: Path, **env: str) -> None:
        import uvicorn

        from kneo.platform import create_platform
        from kneo.settings import Settings
        from kneo.store import open_store

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.idp = OpenIdProvider(root / "idp", redirect_uris=[self.url + "/ui/oidc/callback"])
        self.idp.start()
        settings = Settings.from_env(
            {
                "KNEO_SERV_ADMIN_API_KEY": ADMIN,
                "KNEO_SERV_PROFILES_PATH": str(root / "profiles.json"),
                **self.idp.env(),
                **env,
            }
        )
        self.store = open_store(None, settings=settings, state_dir=root / "state")
        app = create_app(
            False,
            settings=settings,
            manager=create_platform(settings=settings, store=self.store),
            start_worker=False,
        )
        self.server = uvicorn.Server(uvicorn.Config(app, log_config=None, log_level="warning"))
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)

    def start_run(self, example: str, text: str) -> dict[str, Any]:
        body = httpx2.post(
            self.url + "/v1/runs",
            headers={"Authorization": f"Bearer {ADMIN}"},
            json={"input": text, "spec_path": f"examples/{example}.yaml"},
            timeout=30,
        ).json()
        assert body["status"] == "paused", body
        return dict(body)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        self.sock.close()
        self.store.close()
        self.idp.stop()


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


def sign_in_at_provider(browser: Any, live: Live, login: str, start: str = "/ui/inbox") -> Any:
    """A fresh browser context signed in as ``login`` through the provider's own pages."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(live.url + start)
    assert page.url.startswith(live.url + "/ui/login")
    page.click("#oidc-sign-in")
    page.wait_for_url(live.idp.issuer + "/**")  # the provider's login page, not ours
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", "any-password")
    page.click("button[type=submit]")
    page.wait_for_load_state()
    if page.url.startswith(live.idp.issuer):  # the provider's consent page
        page.click("button[type=submit]")
    page.wait_for_url(live.url + start + "**")
    return page


def test_a_reviewer_by_group_signs_in_decides_and_signs_out(browser: Any, live: Live) -> None:
    paused = live.start_run("hitl_approval", "oidc journey")
    page = sign_in_at_provider(browser, live, "alice")
    assert "alice@example.com" in page.content()  # the person, not a key
    page.goto(live.url + f"/ui/tasks/{paused['continuation_id']}")
    page.click("form.a-approved button[type=submit]")
    page.wait_for_load_state()
    run = httpx2.get(
        live.url + f"/v1/runs/{paused['run_id']}",
        headers={"Authorization": f"Bearer {ADMIN}"},
        timeout=10,
    ).json()
    assert run["status"] != "paused", run
    audit = httpx2.get(
        live.url + "/v1/audit-events",
        params={"run_id": paused["run_id"]},
        headers={"Authorization": f"Bearer {ADMIN}"},
        timeout=10,
    ).json()
    actors = {event.get("actor") for event in audit["events"]}
    assert "alice@example.com" in actors, audit
    cookies = page.context.cookies()
    session = next(c for c in cookies if c["name"] == "kneo_console")
    page.click("form.who button[type=submit]")  # sign out
    page.wait_for_url("**/ui/login**")
    copied = httpx2.get(
        live.url + "/ui/inbox",
        cookies={"kneo_console": session["value"]},
        follow_redirects=False,
        timeout=10,
    )
    assert copied.status_code == 303 and "/ui/login" in copied.headers["location"]


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
