"""ServiceClient retry rules and idempotency keys (MockTransport); profile store and precedence."""

from __future__ import annotations

import json
from pathlib import Path

import httpx2
import pytest

from kneo import Decision
from kneo.cli.profiles import ProfileStore, resolve_connection
from kneo.cli.service_client import ServiceClient, ServiceError
from kneo.settings import Settings


def _client(handler, **kwargs) -> ServiceClient:
    return ServiceClient(
        "http://svc",
        api_key="client-secret-key",
        retries=2,
        backoff_seconds=0.01,
        transport=httpx2.MockTransport(handler),
        sleep=lambda s: None,
        **kwargs,
    )


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503])
def test_transient_statuses_are_retried_with_one_idempotency_key(status: int) -> None:
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        if len(seen) < 3:
            return httpx2.Response(status, json={"error": "x", "message": "try again"})
        return httpx2.Response(200, json={"run_id": "r", "status": "succeeded"})

    assert _client(handler).create_run({"input": "x"})["status"] == "succeeded"
    keys = {r.headers["idempotency-key"] for r in seen}
    assert len(seen) == 3 and len(keys) == 1
    assert seen[0].headers["authorization"] == "Bearer client-secret-key"


@pytest.mark.parametrize(
    "status, code",
    [(401, "unauthorized"), (403, "forbidden"), (404, "not_found"), (422, "validation_error")],
)
def test_client_errors_fail_fast_with_the_server_message(status: int, code: str) -> None:
    calls = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        calls.append(1)
        return httpx2.Response(status, json={"error": code, "message": f"server says {code}"})

    with pytest.raises(ServiceError) as info:
        _client(handler).get_run("r")
    assert len(calls) == 1 and info.value.code == code
    assert str(info.value) == f"server says {code}" and info.value.http_status == status


def test_network_errors_are_retried_then_reported_without_the_key() -> None:
    calls = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        calls.append(1)
        raise httpx2.ConnectError("refused client-secret-key")

    with pytest.raises(ServiceError) as info:
        _client(handler).get_run("r")
    assert len(calls) == 3 and info.value.code == "service_unavailable"
    assert "client-secret-key" not in str(info.value)


def test_configured_idempotency_key_is_sent() -> None:
    seen = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request.headers.get("idempotency-key"))
        return httpx2.Response(200, json={})

    client = _client(handler, idempotency_key="stable-key")
    client.resume("c", Decision("q", "approved"))
    client.get_run("r")
    assert seen == ["stable-key", None]


def test_profiles_file_mode_and_no_key_in_views(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "profiles.json"
    store = ProfileStore(path)
    store.set("local", "http://127.0.0.1:8000/", "profile-secret-key")
    store.set("staging", "https://staging.example.com", None, activate=False)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert store.active_name() == "local"
    views = json.dumps([store.describe(n) for n in store.names()])
    assert "profile-secret-key" not in views and '"authenticated": true' in views
    assert "profile-secret-key" not in repr(store.get("local"))
    store.use("staging")
    store.delete("staging")
    assert store.active_name() is None and store.names() == ["local"]


def test_connection_precedence(tmp_path: Path) -> None:
    path = tmp_path / "profiles.json"
    store = ProfileStore(path)
    store.set("a", "http://a:1", "key-a")
    store.set("b", "http://b:2", "key-b", activate=False)
    settings = Settings.from_env(
        {"KNEO_SERV_PROFILES_PATH": str(path), "KNEO_SERV_API_KEY": "env-key"}
    )

    def pick(**kw):
        c = resolve_connection(settings=settings, **{"service_url": None, "profile": None, **kw})
        return (c.url, c.api_key, c.source) if c else None

    assert pick(service_url="http://x:9") == ("http://x:9", "env-key", "service_url")
    assert pick(service_url="http://x:9", profile="b") == ("http://x:9", "key-b", "service_url")
    assert pick(profile="b") == ("http://b:2", "key-b", "profile")
    assert pick(project_default_url="http://p:3") == ("http://p:3", "env-key", "project_config")
    assert pick() == ("http://a:1", "key-a", "active_profile")
    ProfileStore(path).delete("a")
    assert pick() is None
