"""``kneo config profile login``: the device authorization grant against a real
``oidc-provider``, the person approving in real Chromium on the provider's own pages; the
profile keeps a refreshable token (never printed) that the service accepts, and renews it."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from oidc_helpers import AUDIENCE, CHROMIUM, CLI_CLIENT, Live

from tests.cli_zygote import KNEO

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
        server = Live(tmp_path_factory.mktemp("cli"))
        yield server
        server.stop()


def kneo(*args: str, profiles: Path, **kw: Any) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KNEO_")}
    env["KNEO_SERV_PROFILES_PATH"] = str(profiles)
    return subprocess.Popen(
        [*KNEO, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def approve_in_browser(url: str, login: str) -> None:
    """The person's side: the provider's code page, its login, its consent."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page()
        page.set_default_timeout(15_000)
        page.goto(url)
        for _ in range(6):
            page.wait_for_load_state()
            text = page.inner_text("body")
            if "success" in text.lower():
                break
            if page.locator("input[name=login]").count():
                page.fill("input[name=login]", login)
                page.fill("input[name=password]", "any-password")
            page.locator("button[type=submit]").first.click()
        browser.close()


def test_a_person_signs_the_cli_in_with_a_device_code(live: Live, tmp_path: Path) -> None:
    profiles = tmp_path / "profiles.json"
    login = kneo(
        "config", "profile", "login", "me",
        "--service-url", live.url,
        "--issuer", live.idp.issuer,
        "--client-id", CLI_CLIENT,
        "--scope", "openid email profile groups offline_access",
        "--resource", AUDIENCE,
        profiles=profiles,
    )  # fmt: skip
    assert login.stderr is not None
    first = login.stderr.readline()
    assert "enter the code" in first, first
    url = first.split("open ", 1)[1].split(" and enter", 1)[0]
    approve_in_browser(url, "alice")
    out, err = login.communicate(timeout=60)
    assert login.returncode == 0, out + err
    stored = json.loads(profiles.read_text())["profiles"]["me"]["oidc"]
    token = stored["access_token"]
    assert token not in out + err + first and stored["refresh_token"] not in out + err
    assert oct(profiles.stat().st_mode & 0o777) == "0o600"

    listed = kneo("human", "list", "--profile", "me", "--json", profiles=profiles)
    out, err = listed.communicate(timeout=60)
    assert listed.returncode == 0, out + err
    assert "tasks" in json.loads(out)

    # the access token is about to expire: the next command renews it with the refresh token
    data = json.loads(profiles.read_text())
    data["profiles"]["me"]["oidc"]["expires_at"] = time.time() - 5
    profiles.write_text(json.dumps(data))
    again = kneo("human", "list", "--profile", "me", "--json", profiles=profiles)
    out, err = again.communicate(timeout=60)
    assert again.returncode == 0, out + err
    renewed = json.loads(profiles.read_text())["profiles"]["me"]["oidc"]
    assert renewed["access_token"] != token and renewed["expires_at"] > time.time()

    shown = kneo("config", "profile", "show", "--name", "me", "--json", profiles=profiles)
    out, _ = shown.communicate(timeout=60)
    info = json.loads(out)
    assert info["sign_in"] == "oidc_device" and info["authenticated"] is True
    assert renewed["access_token"] not in out
