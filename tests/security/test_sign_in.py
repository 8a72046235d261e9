"""Wrong keys cost something (API and console), static files are what they say, and the
sign-in page sends nobody outside the console."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from kneo import metrics
from kneo.errors import TooManyRequests
from kneo.service import create_app
from kneo.service.throttle import SignInThrottle
from kneo.settings import Settings
from tests.console.console_helpers import CSRF, console_env
from tests.service.svc_helpers import ROOT, build_manager, headers


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.chdir(ROOT)
    env = {**console_env(), "KNEO_SERV_AUTH_MAX_FAILURES": "5", "KNEO_SERV_PROFILES_PATH": "-"}
    settings = Settings.from_env(env)
    manager = build_manager(settings, tmp_path)
    metrics.enable()
    yield create_app(False, settings=settings, manager=manager, start_worker=False)
    manager.close()


def _failures(app: Any, surface: str, outcome: str) -> float:
    monitor = TestClient(app, client=("10.9.9.9", 9090))  # another address: not throttled
    text = monitor.get("/metrics", headers=headers("admin")).text
    line = f'kneo_auth_failures_total{{outcome="{outcome}",surface="{surface}"}}'
    found = [row for row in text.splitlines() if row.startswith(line)]
    return float(found[0].split()[-1]) if found else 0.0


def test_wrong_api_keys_are_throttled_per_client(
    app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "kneo_serv.auth")
    with TestClient(app) as api:
        before = _failures(app, "api", "invalid")
        for i in range(5):
            wrong = api.get("/v1/runs", headers={"Authorization": f"Bearer wrong-key-{i:04d}"})
            assert wrong.status_code == 401
        throttled = api.get("/v1/runs", headers={"Authorization": "Bearer wrong-key-9999"})
        assert throttled.status_code == 429
        assert throttled.json()["error"] == "too_many_requests"
        assert 0 < int(throttled.headers["Retry-After"]) <= 60
        # while throttled, even the right key waits: guessing must not go on
        assert api.get("/v1/runs", headers=headers("viewer")).status_code == 429
        assert api.get("/livez").status_code == 200  # unauthenticated routes are untouched
    assert _failures(app, "api", "invalid") - before == 5
    assert _failures(app, "api", "throttled") >= 2
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "invalid API key on the api from client testclient" in logged
    assert "wrong-key" not in logged  # the presented key is never logged


def test_wrong_console_keys_are_throttled_too(app: Any) -> None:
    with TestClient(app) as browser:
        for i in range(5):
            page = browser.get("/ui/login")
            token = CSRF.search(page.text).group(1)  # type: ignore[union-attr]
            answer = browser.post(
                "/ui/login", data={"api_key": f"guess-{i:06d}", "csrf_token": token}
            )
            assert answer.status_code == 401
        page = browser.get("/ui/login")
        token = CSRF.search(page.text).group(1)  # type: ignore[union-attr]
        answer = browser.post("/ui/login", data={"api_key": "guess-x", "csrf_token": token})
        assert answer.status_code == 429
        assert "Too many failed sign-in attempts" in answer.text
        assert int(answer.headers["Retry-After"]) > 0
    assert _failures(app, "console", "invalid") >= 5


def test_the_window_and_the_key_bucket() -> None:
    """The key bucket is the whole key tried: one wrong key presented from many places is
    throttled everywhere, and a key that shares its first characters is not (real keys often
    share a prefix; a prefix bucket let anyone lock every such key out)."""
    now = [1000.0]
    throttle = SignInThrottle(3, 60, monotonic=lambda: now[0])
    for address in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):  # one key tried from three places
        throttle.check(address, "sharedprefix-a", surface="api")
        throttle.failed(address, "sharedprefix-a", surface="api")
    with pytest.raises(TooManyRequests) as refused:
        throttle.check("10.0.0.4", "sharedprefix-a", surface="api")
    assert refused.value.retry_after == 60
    throttle.check("10.0.0.4", "sharedprefix-b", surface="api")  # its neighbour: free
    now[0] += 30
    with pytest.raises(TooManyRequests) as refused:
        throttle.check("10.0.0.5", "sharedprefix-a", surface="api")
    assert refused.value.retry_after == 30
    now[0] += 31  # the oldest failure left the window
    throttle.check("10.0.0.4", "sharedprefix-a", surface="api")


def test_a_proven_key_passes_its_clients_full_bucket() -> None:
    """A key that signed in from an address passes that address's full bucket; any other key
    from there waits (a guess too), and a request without a key is never proven."""
    throttle = SignInThrottle(2, 60, monotonic=lambda: 1000.0)
    throttle.succeeded("10.0.0.1", "alice-key")
    for guess in ("guess-1", "guess-2"):
        throttle.failed("10.0.0.1", guess, surface="api")
    throttle.check("10.0.0.1", "alice-key", surface="api")
    with pytest.raises(TooManyRequests):
        throttle.check("10.0.0.1", "bob-key", surface="api")
    with pytest.raises(TooManyRequests):
        throttle.check("10.0.0.1", "guess-3", surface="api")
    throttle.check("10.0.0.2", "bob-key", surface="api")  # another address: free
    throttle.succeeded("10.0.0.1", None)  # no key: nothing remembered
    with pytest.raises(TooManyRequests):
        throttle.check("10.0.0.1", None, surface="api")


def test_static_files_are_not_sniffed(app: Any) -> None:
    with TestClient(app) as browser:
        for name in ("console.css", "htmx-2.0.11.min.js"):
            response = browser.get(f"/ui/static/{name}")
            assert response.status_code == 200
            assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    ("target", "kept"),
    [
        ("/ui/tasks/cont_1?x=1", "/ui/tasks/cont_1?x=1"),
        ("/ui/inbox", "/ui/inbox"),
        ("/ui/../v1/runs", ""),
        ("/ui/%2e%2e/v1/runs", ""),
        ("/ui/tasks/..%2F..%2Fv1", ""),
        ("//evil.example/ui/x", ""),
        ("https://evil.example/ui/x", ""),
        ("/ui/\t/evil", ""),
        ("/ui\\@evil.example", ""),
        ("/uix/inbox", ""),
        ("/ui/inbox#frag", ""),
    ],
)
def test_after_sign_in_only_a_console_page(app: Any, target: str, kept: str) -> None:
    with TestClient(app) as browser:
        page = browser.get("/ui/login")
        token = CSRF.search(page.text).group(1)  # type: ignore[union-attr]
        answer = browser.post(
            "/ui/login",
            data={
                "api_key": console_env()["KNEO_SERV_ADMIN_API_KEY"],
                "csrf_token": token,
                "next": target,
            },
            follow_redirects=False,
        )
    assert answer.status_code == 303
    assert answer.headers["location"] == (kept or "/ui/inbox")
