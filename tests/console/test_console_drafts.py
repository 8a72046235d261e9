"""Nothing typed is lost: a decision posted after the session expired (or with another
session's CSRF token) from the console's own page keeps what was typed, asks to sign in
again and shows the filled form for one more click, which applies once. A cross-site post
still gets a bare ``403 csrf_failed``."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from console_helpers import ALL_KEYS, CSRF, Console, start
from svc_helpers import headers

SAME_ORIGIN = {"Origin": "http://testserver"}
TYPED = "My own words,\nover two lines & <markup>"


def _expire_sessions(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nine hours pass (sessions last eight)."""
    import itsdangerous.timed

    later = itsdangerous.timed.TimestampSigner.get_timestamp
    monkeypatch.setattr(
        itsdangerous.timed.TimestampSigner, "get_timestamp", lambda self: later(self) + 9 * 3600
    )


def _hidden(page: Any) -> dict[str, str]:
    fields = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text)
    return {name: html.unescape(value) for name, value in fields}


def _decisions(api: Any, run_id: str) -> list[Any]:
    audit = api.get(
        "/v1/audit-events", params={"run_id": run_id, "event_type": "human.decision"},
        headers=headers("admin"),
    )  # fmt: skip
    return list(audit.json()["events"])


def test_an_expired_session_keeps_the_answer_through_sign_in(
    service: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, api = service()
    paused = start(api, "hitl_approval")
    url = f"/ui/tasks/{paused['continuation_id']}"
    reviewer = Console(app)
    reviewer.sign_in("reviewer")
    key = reviewer.form_key(url)
    _expire_sessions(monkeypatch)
    decision = {
        "request_id": paused["request_id"], "decision": "edited", "content": TYPED,
        "idempotency_key": key, "csrf_token": reviewer.csrf,
    }  # fmt: skip
    lost = reviewer.client.post(url, data=decision, headers=SAME_ORIGIN, follow_redirects=False)
    assert lost.status_code == 401 and "Sign in again" in lost.text
    kept = _hidden(lost)
    assert kept["draft.content"].replace("\r\n", "\n") == TYPED
    assert kept["draft.idempotency_key"] == key and kept["next"] == url
    assert (kept["draft_back"], kept["draft_continuation_id"]) == (
        "task",
        paused["continuation_id"],
    )
    assert "draft.csrf_token" not in kept  # the old token is not carried

    wrong = reviewer.client.post("/ui/login", data={**kept, "api_key": "nope"})
    assert wrong.status_code == 401 and _hidden(wrong)["draft.content"] == kept["draft.content"]
    again = reviewer.client.post(
        "/ui/login", data={**_hidden(wrong), "api_key": ALL_KEYS["reviewer"]}
    )
    assert again.status_code == 200 and "Signed in again" in again.text
    assert TYPED in html.unescape(again.text)  # back in the edit box
    form = _hidden(again)
    assert form["idempotency_key"] == key and form["request_id"] == paused["request_id"]
    assert _task(api, paused)["status"] == "pending"  # nothing decided on the way

    reviewer.csrf = CSRF.search(again.text).group(1)  # type: ignore[union-attr]
    edited = {"request_id": paused["request_id"], "decision": "edited", "content": TYPED}
    for _ in range(2):  # a double click replays the first decision
        done = reviewer.post(url, {**edited, "idempotency_key": key})
        assert done.status_code == 303 and "/ui/runs/" in done.headers["location"]
    assert len(_decisions(api, paused["run_id"])) == 1


def _task(api: Any, paused: dict[str, Any]) -> dict[str, Any]:
    got = api.get(f"/v1/human-tasks/{paused['continuation_id']}", headers=headers("admin"))
    return dict(got.json())


def test_a_cross_site_post_is_still_refused_bare(service: Any) -> None:
    app, api = service()
    paused = start(api, "hitl_approval")
    url = f"/ui/tasks/{paused['continuation_id']}"
    decision = {"request_id": paused["request_id"], "decision": "edited", "content": TYPED}
    stranger = Console(app).client
    for origin in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}, {}):
        answer = stranger.post(url, data=decision, headers=origin, follow_redirects=False)
        assert answer.status_code == 403 and "csrf_failed" in answer.text, origin
        assert "draft." not in answer.text
    assert _task(api, paused)["status"] == "pending"


def test_a_form_from_an_earlier_sign_in_comes_back_filled(service: Any) -> None:
    """Signed in again in another tab: the old page's token is not this session's; the
    answer is shown again under the new token, not dropped."""
    app, api = service()
    paused = start(api, "hitl_review")
    url = f"/ui/tasks/{paused['continuation_id']}"
    reviewer = Console(app)
    reviewer.sign_in("reviewer")
    old = reviewer.csrf
    reviewer.sign_in("reviewer")  # a new session, a new token
    answer = reviewer.client.post(
        url,
        data={"csrf_token": old, "request_id": paused["request_id"], "decision": "rejected",
              "content": "shorter please"},
        headers={"Sec-Fetch-Site": "same-origin"},
        follow_redirects=False,
    )  # fmt: skip
    assert answer.status_code == 403 and "earlier sign-in" in answer.text
    assert "shorter please" in answer.text and reviewer.csrf in answer.text
    assert _task(api, paused)["status"] == "pending"


def test_a_promotion_comment_survives_sign_in(
    service: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from console_helpers import promotion_setup

    store, controller, cid = promotion_setup(tmp_path / "gitops")
    app, api = service(controller=controller, store=store)
    alice = Console(app)
    alice.sign_in("alice")
    url = f"/ui/promotions/{cid}"
    key = alice.form_key(url)
    rid = _task(api, {"continuation_id": cid})["requests"][0]["request_id"]
    _expire_sessions(monkeypatch)
    lost = alice.client.post(
        url,
        data={"csrf_token": alice.csrf, "request_id": rid, "decision": "approved",
              "content": "Looks right to me.", "idempotency_key": key},
        headers=SAME_ORIGIN, follow_redirects=False,
    )  # fmt: skip
    assert lost.status_code == 401
    back = alice.client.post("/ui/login", data={**_hidden(lost), "api_key": ALL_KEYS["alice"]})
    assert back.status_code == 200 and "Looks right to me.</textarea>" in back.text
    assert "You had chosen to <strong>approve</strong>" in back.text
    assert _hidden(back)["idempotency_key"] == key
    assert "0 of 2 needed" in back.text  # not counted yet


def test_a_reject_all_reason_survives_sign_in(
    service: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The "decide together" form's reason comes back in its own box, with its own key."""
    from svc_helpers import TWO_APPROVALS

    app, api = service()
    paused = api.post(
        "/v1/runs", headers=headers("admin"), json={"input": "x", "spec": TWO_APPROVALS}
    ).json()
    cid = paused["continuation_id"]
    ids = " ".join(r["request_id"] for r in _task(api, paused)["requests"])
    reviewer = Console(app)
    reviewer.sign_in("reviewer")
    _expire_sessions(monkeypatch)
    lost = reviewer.client.post(
        f"/ui/tasks/{cid}",
        data={"csrf_token": reviewer.csrf, "request_ids": ids, "decision": "rejected",
              "content": "Not these two.", "idempotency_key": "k-all-rejected"},
        headers=SAME_ORIGIN, follow_redirects=False,
    )  # fmt: skip
    assert lost.status_code == 401 and _hidden(lost)["draft.request_ids"] == ids
    back = reviewer.client.post(
        "/ui/login", data={**_hidden(lost), "api_key": ALL_KEYS["reviewer"]}
    )
    assert back.status_code == 200
    assert 'id="together-content" name="content" rows="2">Not these two.</textarea>' in back.text
    assert 'value="k-all-rejected"' in back.text
    assert _task(api, paused)["status"] == "pending"
