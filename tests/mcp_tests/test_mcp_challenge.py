"""``/mcp``'s ``401`` carries a ``Bearer`` challenge (RFC 6750), read here with the official
MCP SDK's own header parser, and ``/mcp`` signs callers in through the service's sign-in
throttle like the API and the console.

Without ``WWW-Authenticate`` the MCP Inspector took the ``401`` for an OAuth server's and
asked for an interactive sign-in. The challenge names the scheme (send the API key as a
bearer token) and, as Kneo runs no authorization server, no ``resource_metadata`` that would
send a client to one. Before this, ``/mcp`` compared keys outside the throttle: a caller could
guess keys there without ever being slowed down.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mcp.client.auth.utils import (
    extract_field_from_www_auth,
    extract_resource_metadata_from_www_auth,
)

from kneo.platform import create_platform
from kneo.service.app import create_app
from kneo.settings import Settings
from kneo.spec.project import ProjectContext
from tests import http_calls
from tests.mcp_tests.test_mcp_server import AUTH, KEYS, payload, session
from tests.service.svc_helpers import serving_app

LIST = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
ACCEPT = {"Accept": "application/json, text/event-stream"}


@contextmanager
def serving(tmp_path: Path, **env: str) -> Iterator[str]:
    """The service with ``/mcp`` on a real socket; yields the ``/mcp`` URL."""
    settings = Settings.from_env({**AUTH, **env})
    manager = create_platform(settings, ProjectContext.discover(cwd=tmp_path, settings=settings))
    app = create_app(False, settings=settings, manager=manager, start_worker=False, mcp=True)
    try:
        with serving_app(app) as base:
            yield base + "/mcp"
    finally:
        manager.store.close()


def test_a_401_is_a_bearer_challenge_without_oauth_metadata(tmp_path: Path) -> None:
    with serving(tmp_path) as url:
        missing = http_calls.post(url, json=LIST, headers=ACCEPT)
        wrong = http_calls.post(
            url, json=LIST, headers={**ACCEPT, "Authorization": "Bearer nope-42"}
        )
        listed = session(url, KEYS["viewer"], [("list_human_tasks", {})])[0]
    assert missing.status_code == wrong.status_code == 401
    for response in (missing, wrong):
        challenge = response.headers["www-authenticate"]
        assert challenge.split(" ", 1)[0] == "Bearer"
        assert extract_field_from_www_auth(response, "realm") == "kneo"
        assert extract_resource_metadata_from_www_auth(response) is None
        assert response.json()["error"] == "unauthorized"
    # RFC 6750 3.1: no error code when no credentials were sent; invalid_token for a bad one
    assert extract_field_from_www_auth(missing, "error") is None
    assert extract_field_from_www_auth(wrong, "error") == "invalid_token"
    assert "nope-42" not in wrong.headers["www-authenticate"] + wrong.text
    # the key as a bearer token, as the challenge asks: the SDK's client gets the tools
    assert payload(listed)["tasks"] == []


def test_mcp_guesses_are_throttled_like_the_api(tmp_path: Path) -> None:
    with serving(tmp_path, KNEO_SERV_AUTH_MAX_FAILURES="3") as url:
        guesses = [
            http_calls.post(url, json=LIST, headers={**ACCEPT, "X-API-Key": f"guess-{n}"})
            for n in range(3)
        ]
        blocked = http_calls.post(url, json=LIST, headers={**ACCEPT, "X-API-Key": "guess-4"})
        api = http_calls.get(
            url.removesuffix("/mcp") + "/v1/runs", headers={"X-API-Key": "guess-5"}
        )
    assert [g.status_code for g in guesses] == [401, 401, 401]
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
    assert "www-authenticate" not in blocked.headers
    # one throttle for the client, whichever door it knocks on
    assert api.status_code == 429
