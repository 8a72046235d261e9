"""Console sign-in, sessions, CSRF and scopes, with the real app: every page and each role."""

from __future__ import annotations

import base64
import logging
import zlib
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import pytest
from console_helpers import ALL_KEYS, Console, console_auth, start
from svc_helpers import headers

from kneo.console.auth import PAGES
from kneo.console.session import COOKIE
from kneo.service.auth import ROLE_SCOPES, route_scopes

ROLES = ("admin", "operator", "reviewer", "service", "viewer")


def _pages(api: Any) -> dict[str, str]:
    """A URL of every console page over one paused run."""
    paused = start(api, "hitl_approval", session_id="pages")
    return {
        "inbox": "/ui/inbox",
        "task": f"/ui/tasks/{paused['continuation_id']}",
        "run": f"/ui/runs/{paused['run_id']}",
        "session_chain": "/ui/sessions/pages",
        "registry": "/ui/registry",
        "schedules": "/ui/schedules",
    }


def test_page_scopes_are_the_api_routes_scopes(service: Callable[..., Any]) -> None:
    """No second scope table: each page needs exactly the scopes of the API routes it
    mirrors, read from the app's routes."""
    app, _ = service()
    api = {(m, p): s for m, p, s in route_scopes(app)}
    auth = console_auth(app)
    for page, routes in PAGES.items():
        assert auth.scopes[page] == {api[r] for r in routes}, page
    assert auth.scopes["decide"] >= {"human:write"} and auth.scopes["inbox"] == {"human:read"}


@pytest.mark.parametrize("role", ROLES)
def test_every_page_by_role(service: Callable[..., Any], role: str) -> None:
    """A role sees a page when it holds the page's API scopes, else 403 naming the scope;
    decision controls only with the decision scope."""
    app, api = service()
    urls = _pages(api)
    auth = console_auth(app)
    person = Console(app)
    assert person.sign_in(role).status_code == 303
    for page, url in urls.items():
        answer = person.get(url)
        allowed = auth.scopes[page] <= ROLE_SCOPES[role]
        if allowed:
            assert answer.status_code == 200, (page, answer.text[:300])
        else:
            assert answer.status_code == 403, page
            assert "Missing required scope" in answer.text
    task = person.get(urls["task"])
    if task.status_code == 200:
        deciding = "human:write" in ROLE_SCOPES[role]
        assert ('name="decision"' in task.text) is deciding
        assert ("may look but not decide" in task.text) is not deciding


def test_signed_out_pages_go_to_sign_in_and_back(service: Callable[..., Any]) -> None:
    app, api = service()
    urls = _pages(api)
    person = Console(app)
    for url in urls.values():
        answer = person.get(url)
        assert answer.status_code == 303
        assert answer.headers["location"] == "/ui/login?" + urlencode({"next": url})
    refresh = person.get(urls["inbox"], headers={"HX-Request": "true"})  # htmx polling
    assert refresh.status_code == 204 and refresh.headers["hx-redirect"].startswith("/ui/login")
    page = person.client.get("/ui/login?next=" + urls["task"])
    token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    done = person.client.post(
        "/ui/login",
        data={"api_key": ALL_KEYS["reviewer"], "csrf_token": token, "next": urls["task"]},
        follow_redirects=False,
    )
    assert done.headers["location"] == urls["task"]
    for evil in ("//evil.example/ui/", "https://evil.example/", "/v1/runs"):
        token = person.client.get("/ui/login").text.split('name="csrf_token" value="')[1]
        answer = person.client.post(
            "/ui/login",
            data={"api_key": ALL_KEYS["reviewer"], "csrf_token": token[:43], "next": evil},
            follow_redirects=False,
        )
        assert answer.headers["location"] == "/ui/inbox"  # never off the console


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_session_cookie_is_hardened(service: Callable[..., Any], scheme: str) -> None:
    app, _ = service(KNEO_SERV_CONSOLE_SESSION_SECONDS="600")
    person = Console(app, base_url=f"{scheme}://testserver")
    answer = person.sign_in("reviewer")
    cookie = answer.headers["set-cookie"]
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "path", "max-age", "samesite"} <= attributes
    assert "SameSite=strict" in cookie or "samesite=strict" in cookie.lower()
    assert "Path=/ui" in cookie and "Max-Age=600" in cookie
    assert ("secure" in attributes) is (scheme == "https")
    assert ALL_KEYS["reviewer"] not in cookie


def test_bad_key_is_refused_and_never_echoed(service: Callable[..., Any]) -> None:
    app, _ = service()
    person = Console(app)
    answer = person.sign_in(None, key="wrong-key-value-123")
    assert answer.status_code == 401 and "not valid" in answer.text
    assert "wrong-key-value-123" not in answer.text
    assert person.get("/ui/inbox").status_code == 303  # still signed out


def test_planted_key_never_reaches_logs_or_responses(
    service: Callable[..., Any], caplog: pytest.LogCaptureFixture, request_log: list[Any]
) -> None:
    """Sign in, browse every page, decide, sign out: the key appears in no response body,
    header or cookie, and in no log record of any logger."""
    app, api = service()
    urls = _pages(api)
    person = Console(app)
    key = ALL_KEYS["reviewer"]
    seen: list[str] = []
    with caplog.at_level(logging.DEBUG):
        page = person.client.get("/ui/login")
        seen.append(page.text)
        token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
        answer = person.client.post(
            "/ui/login", data={"api_key": key, "csrf_token": token}, follow_redirects=False
        )
        seen += [answer.text, str(answer.headers)]
        person.csrf = person.get("/ui/inbox").text.split('name="csrf_token" value="')[1][:43]
        for url in urls.values():
            got = person.get(url)
            seen += [got.text, str(got.headers)]
        out = person.post("/ui/logout", {})
        seen += [out.text, str(out.headers)]
    records = [r.getMessage() for r in caplog.records] + [r.getMessage() for r in request_log]
    assert records, "the request log recorded the console's requests"
    assert not [t for t in seen + records if key in t]
    assert any('"actor":"reviewer"' in r for r in records)  # the key's name, not the key


def test_session_ends_with_its_key_and_its_lifetime(
    service: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A session names its key: rotating the key (same name, new value) ends it; so does
    the lifetime; a cookie forged or signed with another secret is no session."""
    app, _ = service()
    person = Console(app)
    person.sign_in("reviewer")
    cookie = person.client.cookies[COOKIE]
    rotated, _ = service(
        KNEO_SERV_API_KEYS="reviewer:a-new-reviewer-key-9:reviewer",
    )
    other = Console(rotated)
    other.client.cookies.set(COOKIE, cookie, path="/ui")
    assert other.get("/ui/inbox").status_code == 303  # same secret, rotated key: signed out
    resecret, _ = service(KNEO_SERV_CONSOLE_SECRET="another-secret")
    third = Console(resecret)
    third.client.cookies.set(COOKIE, cookie, path="/ui")
    assert third.get("/ui/inbox").status_code == 303
    compressed = cookie.startswith(".")  # itsdangerous zlib-compresses when it is shorter
    payload, rest = cookie.removeprefix(".").split(".", 1)
    data = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    data = zlib.decompress(data) if compressed else data
    assert b'"reviewer"' in data
    changed = data.replace(b'"reviewer"', b'"admin"')
    changed = zlib.compress(changed) if compressed else changed
    forged = "." * compressed + base64.urlsafe_b64encode(changed).rstrip(b"=").decode()
    tampered = Console(app)
    tampered.client.cookies.set(COOKIE, forged + "." + rest, path="/ui")
    assert tampered.get("/ui/inbox").status_code == 303

    import itsdangerous.timed

    later = itsdangerous.timed.TimestampSigner.get_timestamp
    monkeypatch.setattr(
        itsdangerous.timed.TimestampSigner, "get_timestamp", lambda self: later(self) + 9 * 3600
    )
    assert person.get("/ui/inbox").status_code == 303  # 8 h lifetime passed


def test_signing_out_ends_the_session_on_the_server(service: Callable[..., Any]) -> None:
    """A cookie copied before signing out is refused afterwards (the session's row is
    ended), while another session of the same key goes on."""
    app, _ = service()
    person, elsewhere = Console(app), Console(app)
    person.sign_in("reviewer")
    elsewhere.sign_in("reviewer")
    copied = person.client.cookies[COOKIE]
    assert person.get("/ui/inbox").status_code == 200
    assert person.post("/ui/logout", {}).status_code == 303
    thief = Console(app)
    thief.client.cookies.set(COOKIE, copied, path="/ui")
    assert thief.get("/ui/inbox").status_code == 303  # to the sign-in page
    assert elsewhere.get("/ui/inbox").status_code == 200


def test_csrf_is_required_on_every_form(service: Callable[..., Any]) -> None:
    """Deciding, signing in and signing out all need the session's own token: none or
    another session's is 403 and nothing changes."""
    app, api = service()
    paused = start(api, "hitl_approval")
    url = f"/ui/tasks/{paused['continuation_id']}"
    reviewer, admin = Console(app), Console(app)
    reviewer.sign_in("reviewer")
    admin.sign_in("admin")
    decision = {
        "request_id": paused["metadata"]["pending_human_request"]["request_id"],
        "decision": "approved",
    }
    for token in ("", admin.csrf, "x" * 43):
        answer = reviewer.post(url, decision, csrf=token)
        assert answer.status_code == 403 and "CSRF" in answer.text
    task = api.get(f"/v1/human-tasks/{paused['continuation_id']}", headers=headers("admin"))
    assert task.json()["status"] == "pending"
    assert reviewer.post("/ui/logout", {}, csrf="").status_code == 403
    login = Console(app).client.post(
        "/ui/login", data={"api_key": ALL_KEYS["reviewer"]}, follow_redirects=False
    )
    assert login.status_code == 403
    assert reviewer.post(url, decision).status_code == 303


def test_forged_post_by_a_viewer_is_403(service: Callable[..., Any]) -> None:
    """A viewer holding a valid session and token still may not decide."""
    app, api = service()
    paused = start(api, "hitl_approval")
    viewer = Console(app)
    viewer.sign_in("viewer")
    rid = paused["metadata"]["pending_human_request"]["request_id"]
    answer = viewer.post(
        f"/ui/tasks/{paused['continuation_id']}", {"request_id": rid, "decision": "approved"}
    )
    assert answer.status_code == 403 and "human:write" in answer.text
    task = api.get(f"/v1/human-tasks/{paused['continuation_id']}", headers=headers("admin"))
    assert task.json()["status"] == "pending"


def test_console_can_be_switched_off(service: Callable[..., Any]) -> None:
    _, api = service(KNEO_SERV_CONSOLE_ENABLED="false")
    assert api.get("/ui/login").status_code == 404
    assert api.get("/v1/human-tasks", headers=headers("viewer")).status_code == 200


def test_pages_carry_security_headers(service: Callable[..., Any]) -> None:
    app, _ = service()
    person = Console(app)
    person.sign_in("viewer")
    answer = person.get("/ui/inbox")
    assert "script-src 'self'" in answer.headers["content-security-policy"]
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["cache-control"] == "no-store"
    scripts = ('<script src="/ui/static/htmx-2.0.11.min.js"', '<script src="/ui/static/console.js"')
    page = answer.text
    for script in scripts:
        assert script in page
        page = page.replace(script, "")
    assert "<script" not in page  # no inline script: the policy would refuse it
