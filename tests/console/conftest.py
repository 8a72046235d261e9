"""Fixtures for the reviewer console: the real service app (API and console) over a real
store, and a signed-in browser-like client per API key."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

ROOT = Path(__file__).resolve().parents[2]
# The service tests' key table and manager builder, the controller tests' Git helpers.
for helpers in ("service", "controller"):
    if str(ROOT / "tests" / helpers) not in sys.path:
        sys.path.insert(0, str(ROOT / "tests" / helpers))

from svc_helpers import KEYS, auth_env, build_manager  # noqa: E402

from kneo.service import create_app  # noqa: E402
from kneo.settings import Settings  # noqa: E402

#: Two more reviewers, for the 2-of-2 promotion.
EXTRA_KEYS = {"alice": "alice-secret-token-6", "bob": "bob-secret-token-7"}
ALL_KEYS = {**KEYS, **EXTRA_KEYS}
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
IDEM = re.compile(r'name="idempotency_key" value="([^"]+)"')


def console_env(**extra: str) -> dict[str, str]:
    env = auth_env()
    env["KNEO_SERV_API_KEYS"] += "".join(f";{n}:{k}:reviewer" for n, k in EXTRA_KEYS.items())
    env["KNEO_SERV_CONSOLE_SECRET"] = "console-test-secret"
    return {**env, **extra}


class Console:
    """One person's browser: a TestClient with its own cookie jar over the shared app."""

    def __init__(self, app: Any, base_url: str = "http://testserver") -> None:
        self.client = TestClient(app, base_url=base_url, raise_server_exceptions=False)
        self.csrf = ""

    def sign_in(self, role: str | None, key: str | None = None) -> Any:
        page = self.client.get("/ui/login")
        token = CSRF.search(page.text)
        assert token, page.text
        key = key if key is not None else ALL_KEYS[role or ""]
        answer = self.client.post(
            "/ui/login",
            data={"api_key": key, "csrf_token": token.group(1), "next": ""},
            follow_redirects=False,
        )
        if answer.status_code == 303:
            self.csrf = CSRF.search(self.client.get("/ui/inbox").text).group(1)  # type: ignore[union-attr]
        return answer

    def get(self, path: str, **kw: Any) -> Any:
        return self.client.get(path, follow_redirects=False, **kw)

    def post(self, path: str, data: dict[str, str], *, csrf: str | None = None) -> Any:
        fields = {"csrf_token": self.csrf if csrf is None else csrf, **data}
        if csrf == "":
            del fields["csrf_token"]
        return self.client.post(path, data=fields, follow_redirects=False)

    def form_key(self, path: str) -> str:
        """The idempotency key a freshly rendered form carries."""
        found = IDEM.search(self.get(path).text)
        assert found
        return found.group(1)


@pytest.fixture
def service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., tuple[Any, TestClient]]]:
    """``service(env_extra..., controller=None)`` -> (app, API client) over a fresh store."""
    monkeypatch.chdir(ROOT)
    opened: list[tuple[TestClient, Any]] = []

    def factory(controller: Any = None, store: Any = None, **extra: str) -> tuple[Any, TestClient]:
        environ = {"KNEO_SERV_PROFILES_PATH": str(tmp_path / "profiles.json"), **console_env()}
        settings = Settings.from_env({**environ, **extra})
        if store is None:
            manager = build_manager(settings, tmp_path)
        else:
            from kneo.platform import create_platform

            manager = create_platform(settings=settings, store=store)
        app = create_app(
            False, settings=settings, manager=manager, start_worker=False, controller=controller
        )
        api = TestClient(app, raise_server_exceptions=False)
        api.__enter__()
        opened.append((api, manager))
        return app, api

    yield factory
    for api, manager in opened:
        api.__exit__(None, None, None)
        close = getattr(manager, "close", None)
        if callable(close):
            close()


def start(api: TestClient, spec: str, text: str = "launch", role: str = "admin") -> dict[str, Any]:
    """A run of ``examples/<spec>.yaml`` started over the API (paused, as a rule)."""
    from svc_helpers import headers

    body = api.post(
        "/v1/runs",
        headers=headers(role),
        json={"input": text, "spec_path": f"examples/{spec}.yaml"},
    ).json()
    assert body["status"] == "paused", body
    return dict(body)


def console_auth(app: Any) -> Any:
    """The mounted console's :class:`~kneo.console.auth.ConsoleAuth`."""
    mount = next(r for r in app.routes if getattr(r, "path", None) == "/ui")
    return mount.app.state.auth


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def request_log() -> Iterator[list[logging.LogRecord]]:
    """Records of the service's request logger (it does not propagate to ``caplog``)."""
    from kneo.service.middleware import LOGGER_NAME

    handler = _Records()
    logger = logging.getLogger(LOGGER_NAME)
    logger.addHandler(handler)
    yield handler.records
    logger.removeHandler(handler)
