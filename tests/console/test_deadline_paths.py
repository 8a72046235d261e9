"""The deadline at the door on each way to decide through the service (issue 71, item 2): the
API's resume and ``/decisions``, the console's form, a decision link and a Slack button, each
for a request past its ``expires_at`` with ``on_timeout: fail`` (after the sweep deleted the
task: never ``404``), ``continue`` (before the sweep: the decision applies the timeout) and
``escalate`` (decided as ever). The platform and the CLI are in
``tests/hitl/test_deadline_at_the_door.py``, MCP and A2A in their own suites
(``test_mcp_deadline.py``, ``test_a2a_deadline.py``). Requests time out after one real second.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import pytest
from console_helpers import Console
from slack_sdk.signature import SignatureVerifier
from starlette.testclient import TestClient
from svc_helpers import headers

from kneo.platform.decision_links import DecisionLinks
from kneo.platform.slack import BUTTONS
from kneo.store import AuditQuery
from tests.hitl.deadline_cases import CASES, TIMED_OUT, spec

SIGNING = "planted-signing-secret-2b7e"


def _env() -> dict[str, str]:
    receivers = [
        {"name": "team", "type": "slack_app", "url": "http://127.0.0.1:9", "channel": "C0KNEO",
         "token_env": "SLACK_BOT_TOKEN", "signing_secret_env": "SLACK_SIGNING_SECRET",
         "events": ["human.requested"]},
    ]  # fmt: skip
    return {
        "KNEO_SERV_PUBLIC_URL": "http://testserver",
        "KNEO_SERV_DECISION_LINKS": "true",
        "KNEO_SERV_NOTIFICATIONS_RECEIVERS": json.dumps(receivers),
        "KNEO_SERV_NOTIFICATIONS_PEOPLE": json.dumps([{"user": "reviewer", "slack": "UREV"}]),
        "SLACK_BOT_TOKEN": "xoxb-planted-5150",
        "SLACK_SIGNING_SECRET": SIGNING,
    }


Way = Callable[[Any, TestClient, dict[str, Any]], tuple[int, str]]


def _api(app: Any, api: TestClient, run: dict[str, Any]) -> tuple[int, str]:
    answer = api.post(
        f"/v1/human-tasks/{run['continuation_id']}/resume",
        headers=headers("reviewer"),
        json={"request_id": run["request_id"], "decision": "approved"},
    )
    return answer.status_code, str(answer.json().get("error") or answer.json().get("status"))


def _api_together(app: Any, api: TestClient, run: dict[str, Any]) -> tuple[int, str]:
    answer = api.post(
        f"/v1/human-tasks/{run['continuation_id']}/decisions",
        headers=headers("reviewer"),
        json={"decisions": [{"request_id": run["request_id"], "decision": "approved"}]},
    )
    return answer.status_code, str(answer.json().get("error") or answer.json().get("status"))


def _console(app: Any, api: TestClient, run: dict[str, Any]) -> tuple[int, str]:
    reviewer = Console(app)
    reviewer.sign_in("reviewer")
    form = {"request_id": run["request_id"], "decision": "approved"}
    answer = reviewer.post(f"/ui/tasks/{run['continuation_id']}", form)
    return answer.status_code, answer.text


def _link(app: Any, api: TestClient, run: dict[str, Any]) -> tuple[int, str]:
    links = DecisionLinks.from_settings(app.state.settings)
    assert links is not None
    url = links.url(run["continuation_id"], run["request_id"], "reviewer")
    token = url.rsplit("/", 1)[1]
    page = api.get(f"/ui/decide/{token}")
    answer = api.post(f"/ui/decide/{token}", data={"decision": "approved"})
    return answer.status_code, page.text + answer.text


def _slack(app: Any, api: TestClient, run: dict[str, Any]) -> tuple[int, str]:
    action = BUTTONS["approved"][0]
    value = json.dumps({"c": run["continuation_id"], "r": run["request_id"], "d": "approved"})
    payload = {
        "type": "block_actions",
        "user": {"id": "UREV", "username": "rev"},
        "channel": {"id": "C0KNEO"},
        "actions": [{"action_id": action, "value": value, "type": "button"}],
    }
    body = urlencode({"payload": json.dumps(payload)})
    stamp = str(int(time.time()))
    signed = SignatureVerifier(SIGNING).generate_signature(timestamp=stamp, body=body)
    answer = api.post(
        "/hooks/slack/team/interactions",
        content=body,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": signed,
        },
    )
    data = answer.json()
    return (409 if data.get("error") else answer.status_code), json.dumps(data)


WAYS: dict[str, Way] = {
    "api": _api,
    "api-decisions": _api_together,
    "console": _console,
    "decision-link": _link,
    "slack": _slack,
}


@pytest.mark.parametrize("way", sorted(WAYS))
def test_each_way_to_decide_holds_the_deadline(
    service: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Any, way: str
) -> None:
    monkeypatch.setenv("KNEO_HITL_COUNTER", str(tmp_path / "counter"))
    app, api = service(**_env())
    manager = app.state.manager
    runs = {}
    for on_timeout, _, _ in CASES:
        body = api.post(
            "/v1/runs", headers=headers("admin"), json={"input": "x", "spec": spec(on_timeout)}
        ).json()
        assert body["status"] == "paused", body
        runs[on_timeout] = body
    time.sleep(1.2)  # every request past its expires_at
    for on_timeout, swept, _ in CASES:
        if swept:  # this one's timeout applied by the sweep, the others' not yet
            cid = runs[on_timeout]["continuation_id"]
            assert manager.sweeps.expire_human_tasks([cid], manager.clock.now()) == 1
    for on_timeout, swept, refused in CASES:
        run = runs[on_timeout]
        status, said = WAYS[way](app, api, run)
        final = manager.store.runs.get_run(run["run_id"]).status
        if refused:
            assert status == 409, (on_timeout, swept, status, said[:400])
            assert "human_task_expired" in said or re.search(r"expired at", said), said[:400]
            assert "not_found" not in said and "no longer exists" not in said
            assert final == TIMED_OUT[on_timeout], (on_timeout, final)
            decided = manager.store.audit.list_audit(
                AuditQuery(run_id=run["run_id"], event_type="human.decision")
            ).items
            assert all(e.actor == "system:timeout" for e in decided)
        else:  # escalate: decided as ever
            assert status in (200, 303), (status, said[:400])
            assert final == "succeeded", final
