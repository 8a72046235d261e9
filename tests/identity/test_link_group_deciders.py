"""Links work for everyone who gets one: alice's right to decide comes from her identity
provider's group (``group:release-managers=reviewer``, a real ``oidc-provider``), which a
decision link alone cannot know. Her link, used without a session, says to sign in as her
(no dead end behind "You decide as ..."); signed in to the console as alice, the same link
decides as her, with her token's groups; bob's session cannot use alice's link. The page
shows the request's context."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import oidc_helpers
import pytest
from oidc_helpers import ADMIN, Live, console_over_http, free_port

from kneo.platform.decision_links import DecisionLinks
from tests import http_calls

ROOT = Path(__file__).resolve().parents[2]
LINK_SECRET = "console-secret-for-links-0123456789"
SPEC = {
    "version": "v1",
    "workflow": {
        "type": "sequential",
        "name": "release-notes",
        "steps": [{"id": "approve", "kind": "human", "ref": "reviewer"}],
    },
    "components": {
        "humans": {"reviewer": {"prompt": "Ship the notes?", "assignee": "user:alice@example.com"}}
    },
}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    root = tmp_path_factory.mktemp("links")
    port = free_port()  # the console's public URL (its sign-in's redirect) is the server's
    real = socket.socket

    class Fixed(real):  # type: ignore[misc,valid-type]
        """Live's listening socket, bound to ``port``, once."""

        def bind(self, address: Any) -> None:
            oidc_helpers.socket.socket = real  # type: ignore[misc]
            super().bind((address[0], port))

    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)
        mp.setattr(oidc_helpers.socket, "socket", Fixed)
        server = Live(
            root,
            KNEO_SERV_DECISION_LINKS="true",
            KNEO_SERV_CONSOLE_SECRET=LINK_SECRET,
            KNEO_SERV_PUBLIC_URL=f"http://127.0.0.1:{port}",
        )
        yield server
        server.stop()


def link_path(live: Live) -> tuple[str, str]:
    run = http_calls.post(
        live.url + "/v1/runs",
        headers={"Authorization": f"Bearer {ADMIN}"},
        json={"input": "notes", "spec": SPEC},
        timeout=30,
    ).json()
    assert run["status"] == "paused", run
    cid = run["continuation_id"]
    task = http_calls.get(
        f"{live.url}/v1/human-tasks/{cid}", headers={"Authorization": f"Bearer {ADMIN}"}
    ).json()
    rid = task["requests"][0]["request_id"]
    links = DecisionLinks(LINK_SECRET, 3600, live.url)
    return cid, links.url(cid, rid, "alice@example.com").removeprefix(live.url)


def test_a_group_derived_decider_decides_by_link_once_signed_in(live: Live) -> None:
    cid, path = link_path(live)
    with httpx2.Client(base_url=live.url, timeout=10) as anonymous:
        page = anonymous.get(path)
        assert page.status_code == 200 and "Ship the notes?" in page.text
        assert "release-notes" in page.text and "user:alice@example.com" in page.text  # context
        refused = anonymous.post(path, data={"decision": "approved"})
        assert refused.status_code == 403 and "sign in to the console as them" in refused.text
    bob = console_over_http(live, "bob")  # a release manager too, but the link is alice's
    try:
        other = bob.post(path, data={"decision": "approved"})
        assert other.status_code == 403, other.text
    finally:
        bob.close()
    alice = console_over_http(live, "alice")
    try:
        decided = alice.post(path, data={"decision": "approved"})
        assert decided.status_code == 200 and "Decided: approved" in decided.text
    finally:
        alice.close()
    events = http_calls.get(
        f"{live.url}/v1/audit-events",
        params={"event_type": "human.decision"},
        headers={"Authorization": f"Bearer {ADMIN}"},
    ).json()["events"]
    [event] = [e for e in events if e["continuation_id"] == cid]
    assert event["actor"] == "alice@example.com"
    assert event["payload"]["identity"]["method"] == "oidc_session"
