"""Event triggers declared in a signed bundle: the real ``standardwebhooks`` library and the
real ``cloudevents`` SDK as senders, against the real app over one store (SQLite and
PostgreSQL).

One event delivered three times (retried, re-signed, in the other CloudEvents mode) starts
one run; a forged signature, a filter that drops, another project's path, a secret the
project does not declare and a replayed HMAC body start nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cloudevents.core.bindings.http import to_binary_event, to_structured_event
from cloudevents.core.v1.event import CloudEvent
from gitops_fixtures import Keys, Repo, documented, make_controller
from standardwebhooks.webhooks import Webhook
from starlette.testclient import TestClient

from kneo.clock import ManualClock
from kneo.platform import create_platform
from kneo.settings import Settings
from kneo.spec.project import ProjectContext
from kneo.store import RunQuery

SECRET = "whsec_" + base64.b64encode(b"trigger-secret-0123456789abcdef").decode()
FORGED = "whsec_" + base64.b64encode(b"someone-elses-secret-0123456789").decode()
CE = "/v1/triggers/intake/dev/tickets"
PLAIN = "/v1/triggers/intake/dev/plain"


def intake() -> dict[str, Any]:
    return {
        "version": "v1",
        "agent": {"name": "a", "model": {"provider": "dummy", "script": [{"text": "ok"}]}},
        "workflow": {"type": "sequential", "steps": [{"id": "s", "kind": "agent", "ref": "a"}]},
        "triggers": [
            {
                "name": "tickets",
                "secret": "hook",
                "format": "cloudevents",
                "filter": {"/type": "com.example.ticket.created"},
                "input": "/data/title",
                "metadata": {"priority": "/data/priority"},
            },
            {
                "name": "plain",
                "secret": "hook",
                "signature": "hmac-sha256",
                "header": "X-Hub-Signature-256",
                "event_id": "/delivery",
            },
            {"name": "stolen", "secret": "KNEO_SERV_ADMIN_API_KEY"},
        ],
    }


@pytest.fixture
def client(
    store: Any, repo: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> Iterator[TestClient]:
    from kneo.service import create_app

    repo.write("bundles/intake/dev.json", keys.bundle("intake", "dev", intake()))
    repo.commit("intake")
    assert make_controller(store, repo, keys, clock, tmp_path).reconcile_once().ok
    (tmp_path / ".kneo").mkdir(exist_ok=True)
    (tmp_path / ".kneo" / "config.yaml").write_text(
        "version: v1\nenvironments: {dev: {}}\nsecrets: {extra: {hook: TRIGGER_SECRET}}\n"
    )
    settings = Settings.from_env(
        {"TRIGGER_SECRET": SECRET, "KNEO_SERV_ADMIN_API_KEY": "admin-key-0123456789abcdef"}
    )
    project = ProjectContext.discover(cwd=tmp_path, settings=settings)
    manager = create_platform(settings=settings, project=project, store=store, clock=clock)
    app = create_app(False, settings=settings, manager=manager, start_worker=False)
    before = {r.run_id for r in store.runs.list_runs(RunQuery(limit=1000, count=False)).items}
    with TestClient(app, raise_server_exceptions=False) as c:
        c.app.state.runs_before = before  # (a PostgreSQL database keeps earlier tests' runs)
        yield c


def ticket(event_id: str = "t-1", kind: str = "com.example.ticket.created") -> CloudEvent:
    return CloudEvent(
        {"id": event_id, "source": "/helpdesk", "type": kind, "specversion": "1.0",
         "datacontenttype": "application/json"},
        {"title": "Printer on fire", "priority": "high"},
    )  # fmt: skip


def signed(message: Any, msg_id: str, secret: str = SECRET) -> tuple[dict[str, str], bytes]:
    """A CloudEvents HTTP message signed as Standard Webhooks says, by its library."""
    body = message.body if isinstance(message.body, bytes) else message.body.encode()
    now = datetime.now(UTC)
    signature = Webhook(secret).sign(msg_id, now, body.decode())
    headers = {
        **message.headers,
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }
    return headers, body


def _runs(client: TestClient, store: Any) -> list[Any]:
    """The runs this test started."""
    before = client.app.state.runs_before
    return [r for r in store.runs.list_runs(RunQuery(limit=1000, count=False)).items
            if r.run_id not in before]  # fmt: skip


def test_one_cloudevent_delivered_three_times_starts_one_run(
    client: TestClient, store: Any
) -> None:
    event = ticket()
    headers, body = signed(to_structured_event(event), "msg-1")
    first = client.post(CE, content=body, headers=headers)
    assert first.status_code == 202, first.text
    assert documented("triggers-deliver", first)["status"] == "started"
    again = client.post(CE, content=body, headers=headers)  # the sender's retry
    assert again.status_code == 200 and documented("triggers-deliver", again) == {
        "status": "duplicate",
        "run_id": first.json()["run_id"],
    }
    headers, body = signed(to_binary_event(event), "msg-2")  # re-sent, binary mode
    third = client.post(CE, content=body, headers=headers)
    assert third.status_code == 200 and third.json()["status"] == "duplicate", third.text
    (run,) = [r for r in _runs(client, store) if r.bundle_name == "intake"]
    assert run.run_id == first.json()["run_id"] and run.status == "queued"
    assert run.input_text == "Printer on fire"
    assert run.metadata["priority"] == "high"
    assert run.metadata["trigger"] == {"name": "tickets", "event_id": "/helpdesk\nt-1"}


def test_forged_filtered_foreign_and_undeclared_start_nothing(
    client: TestClient, store: Any
) -> None:
    headers, body = signed(to_structured_event(ticket("t-2")), "msg-3", secret=FORGED)
    forged = client.post(CE, content=body, headers=headers)
    assert forged.status_code == 401 and forged.json()["error"] == "unauthorized"
    assert SECRET not in forged.text and FORGED not in forged.text
    headers, body = signed(to_structured_event(ticket("t-2")), "msg-4")
    tampered = client.post(CE, content=body.replace(b"fire", b"FIRE"), headers=headers)
    assert tampered.status_code == 401
    headers, body = signed(to_structured_event(ticket("t-3", kind="com.example.other")), "m5")
    dropped = client.post(CE, content=body, headers=headers)
    assert dropped.status_code == 200 and dropped.json() == {"status": "filtered"}
    headers, body = signed(to_structured_event(ticket("t-4")), "msg-6")
    foreign = client.post("/v1/projects/other" + CE, content=body, headers=headers)
    assert foreign.status_code == 404, foreign.text
    undeclared = client.post("/v1/triggers/intake/dev/stolen", content=b"{}", headers=headers)
    assert undeclared.status_code == 403, undeclared.text
    assert undeclared.json()["error"] == "E_SECRET_UNDECLARED"
    missing = client.post("/v1/triggers/intake/dev/nope", content=body, headers=headers)
    assert missing.status_code == 404
    assert _runs(client, store) == []
    # the signed delivery that was refused above, sent untouched: it starts its run once
    headers, body = signed(to_structured_event(ticket("t-2")), "msg-7")
    assert client.post(CE, content=body, headers=headers).status_code == 202


def test_an_hmac_trigger_refuses_a_bad_signature_and_dedupes_a_replay(
    client: TestClient, store: Any
) -> None:
    body = json.dumps({"delivery": "d-1", "action": "merged"}).encode()
    good = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    bad = "sha256=" + hmac.new(b"guess", body, hashlib.sha256).hexdigest()
    assert client.post(PLAIN, content=body, headers={"X-Hub-Signature-256": bad}).status_code == 401
    assert client.post(PLAIN, content=body).status_code == 401
    started = client.post(PLAIN, content=body, headers={"X-Hub-Signature-256": good})
    assert started.status_code == 202, started.text
    replay = client.post(PLAIN, content=body, headers={"X-Hub-Signature-256": good})
    assert replay.json() == {"status": "duplicate", "run_id": started.json()["run_id"]}
    (run,) = _runs(client, store)
    assert json.loads(run.input_text) == {"action": "merged", "delivery": "d-1"}
