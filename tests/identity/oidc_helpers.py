"""A real OpenID provider for the identity tests: node's ``oidc-provider`` (panva), installed
from tests/identity/oidc_provider's committed lock file and started on loopback.

The provider signs with RSA keys the tests make (so a test can restart it with a rotated key)
and knows alice and bob in ``release-managers``, carol in ``interns``, and two people who
typed alice's address into their profile: mallory (``email_verified: false``) and eve (no
``email_verified`` claim), both ``contractors``. Access tokens for the API's audience are
JWTs (resource indicators), with the person's ``email``, ``email_verified`` and ``groups``;
the ``ci-bot`` client (client credentials) is in ``release-managers`` too.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx2

from kneo.service import create_app  # at import: the request logger's wiring is set once
from tests import http_calls
from tests.npm_packages import node_modules_for, tool

PROJECT = Path(__file__).with_name("oidc_provider")
AUDIENCE = "https://kneo.test/api"
OTHER_AUDIENCE = "https://other.test/api"
SHORT_RESOURCE = "urn:kneo:short-lived"
CHROMIUM = shutil.which("chromium") or "/usr/lib/chromium/chromium"
ADMIN = "identity-admin-key-0123456789"
CONSOLE_CLIENT = "kneo-console"
CONSOLE_SECRET = "console-client-secret-0123456789"
CLI_CLIENT = "kneo-cli"
BOT_CLIENT = "ci-bot"
BOT_SECRET = "ci-bot-secret-0123456789"
USERS = {
    "alice": {"email": "alice@example.com", "name": "Alice", "groups": ["release-managers"]},
    "bob": {"email": "bob@example.com", "name": "Bob", "groups": ["release-managers"]},
    "carol": {"email": "carol@example.com", "name": "Carol", "groups": ["interns"]},
    # alice's address, typed in by someone else: the provider never checked it
    "mallory": {
        "email": "alice@example.com",
        "email_verified": False,
        "name": "Mallory",
        "groups": ["contractors"],
    },
    "eve": {
        "email": "alice@example.com",
        "email_verified": None,  # the claim is left out
        "name": "Eve",
        "groups": ["contractors"],
    },
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def signing_key(kid: str) -> dict[str, Any]:
    """A fresh private RSA JWK (the provider's signing key)."""
    from joserfc.jwk import RSAKey

    key = RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig", "alg": "RS256"})
    return dict(key.as_dict(private=True))


class OpenIdProvider:
    """One ``oidc-provider`` process; :meth:`restart` keeps its issuer and port."""

    def __init__(self, work: Path, *, redirect_uris: list[str] | None = None) -> None:
        self.work = work
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.keys = [signing_key("key-1")]
        self.redirect_uris = redirect_uris or ["http://127.0.0.1/ui/oidc/callback"]
        self.proc: subprocess.Popen[bytes] | None = None
        modules = node_modules_for(PROJECT)
        work.mkdir(parents=True, exist_ok=True)
        shutil.copy(PROJECT / "provider.mjs", work / "provider.mjs")
        shutil.copy(PROJECT / "package.json", work / "package.json")
        if not (work / "node_modules").exists():
            (work / "node_modules").symlink_to(modules, target_is_directory=True)

    def config(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "port": self.port,
            "keys": self.keys,
            "users": USERS,
            "defaultResource": AUDIENCE,
            "resources": {
                AUDIENCE: {"audience": AUDIENCE},
                OTHER_AUDIENCE: {"audience": OTHER_AUDIENCE},
                SHORT_RESOURCE: {"audience": AUDIENCE, "ttl": 1},
            },
            "clientGroups": {BOT_CLIENT: ["release-managers"]},
            "clients": [
                {
                    "client_id": CONSOLE_CLIENT,
                    "client_secret": CONSOLE_SECRET,
                    "redirect_uris": self.redirect_uris,
                    "post_logout_redirect_uris": [
                        uri.replace("/oidc/callback", "/signed-out") for uri in self.redirect_uris
                    ],
                    "grant_types": ["authorization_code", "refresh_token"],
                    "response_types": ["code"],
                },
                {
                    "client_id": CLI_CLIENT,
                    "token_endpoint_auth_method": "none",
                    "grant_types": [
                        "urn:ietf:params:oauth:grant-type:device_code",
                        "refresh_token",
                    ],
                    "response_types": [],
                    "redirect_uris": [],
                },
                {
                    "client_id": BOT_CLIENT,
                    "client_secret": BOT_SECRET,
                    "grant_types": ["client_credentials"],
                    "response_types": [],
                    "redirect_uris": [],
                },
            ],
        }

    def start(self) -> OpenIdProvider:
        config = self.work / "config.json"
        config.write_text(json.dumps(self.config()))
        log = (self.work / "provider.log").open("ab")
        env = {k: v for k, v in os.environ.items() if not k.startswith("NODE_")}
        self.proc = subprocess.Popen(
            [tool("node"), "provider.mjs", str(config)],
            cwd=self.work,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError((self.work / "provider.log").read_text()[-3000:])
            try:
                http_calls.get(f"{self.issuer}/.well-known/openid-configuration", timeout=1)
                return self
            except httpx2.TransportError:
                time.sleep(0.1)
        raise RuntimeError("oidc-provider did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def client_credentials(self, *, resource: str = AUDIENCE) -> str:
        """An access token (JWT) for the ``ci-bot`` client, from the token endpoint."""
        response = http_calls.post(
            f"{self.issuer}/token",
            data={"grant_type": "client_credentials", "resource": resource, "scope": "groups"},
            auth=(BOT_CLIENT, BOT_SECRET),
            timeout=10,
        )
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    def env(self, **extra: str) -> dict[str, str]:
        """Kneo's settings for this provider."""
        return {
            "KNEO_SERV_OIDC_ISSUER": self.issuer,
            "KNEO_SERV_OIDC_AUDIENCE": AUDIENCE,
            "KNEO_SERV_OIDC_CLIENT_ID": CONSOLE_CLIENT,
            "KNEO_SERV_OIDC_CLIENT_SECRET_ENV": "KNEO_TEST_OIDC_CLIENT_SECRET",
            "KNEO_TEST_OIDC_CLIENT_SECRET": CONSOLE_SECRET,
            "KNEO_SERV_OIDC_SCOPES": "openid email profile groups",
            "KNEO_SERV_OIDC_ROLES": "group:release-managers=reviewer;group:interns=viewer",
            **extra,
        }


class Live:
    """The real app on uvicorn in this process, its console registered at the provider."""

    def __init__(
        self, root: Path, *, store: Any = None, controller: Any = None, **env: str
    ) -> None:
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
        self.store = store or open_store(None, settings=settings, state_dir=root / "state")
        app = create_app(
            False,
            settings=settings,
            manager=create_platform(settings=settings, store=self.store),
            start_worker=False,
            controller=controller,
            run_controller=controller is not None,
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
        body = http_calls.post(
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


def through_provider(
    client: httpx2.Client, response: httpx2.Response, login: str, until: str
) -> str:
    """Walk the provider's own login and consent pages over plain HTTP as ``login`` (any
    password: the provider's development interactions), following redirects by hand until
    one leads to a URL starting with ``until``, which is returned (not fetched)."""
    for _ in range(12):
        if response.is_redirect:
            target = urljoin(str(response.url), response.headers["location"])
            if target.startswith(until):
                return target
            response = client.get(target)
            continue
        form = re.search(r'<form[^>]*action="([^"]+)"', response.text)
        assert response.status_code == 200 and form is not None, response.text[:2000]
        fields = dict(re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', response.text))
        if 'name="login"' in response.text:
            fields.update(login=login, password="any-password")
        response = client.post(urljoin(str(response.url), form.group(1)), data=fields)
    raise AssertionError(f"the provider never sent {login} on to {until}")


def person_token(provider: OpenIdProvider, login: str, redirect_uri: str) -> str:
    """An access token (JWT) for the API's audience that ``login`` gets by signing in at the
    provider (authorization code with PKCE, as the console's client)."""
    verifier = secrets.token_urlsafe(48)
    challenge = hashlib.sha256(verifier.encode()).digest()
    with httpx2.Client(timeout=10, follow_redirects=False) as client:
        start = client.get(
            f"{provider.issuer}/auth",
            params={
                "client_id": CONSOLE_CLIENT,
                "response_type": "code",
                "redirect_uri": redirect_uri,
                "scope": "openid email profile groups",
                "state": secrets.token_urlsafe(16),
                "code_challenge": base64.urlsafe_b64encode(challenge).rstrip(b"=").decode(),
                "code_challenge_method": "S256",
                "resource": AUDIENCE,
            },
        )
        back = through_provider(client, start, login, redirect_uri)
    code = parse_qs(urlsplit(back).query)["code"][0]
    answer = http_calls.post(
        f"{provider.issuer}/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
            "resource": AUDIENCE,
        },
        auth=(CONSOLE_CLIENT, CONSOLE_SECRET),
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def console_over_http(live: Live, login: str) -> httpx2.Client:
    """A client holding a console session ``login`` opened through Kneo's OpenID sign-in
    (``/ui/oidc/login`` -> the provider's pages -> ``/ui/oidc/callback``), no browser."""
    client = httpx2.Client(base_url=live.url, timeout=10, follow_redirects=False)
    callback = live.url + "/ui/oidc/callback"
    back = through_provider(client, client.get("/ui/oidc/login"), login, callback)
    signed_in = client.get(back)
    assert signed_in.status_code == 200, signed_in.text[:2000]
    return client


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
