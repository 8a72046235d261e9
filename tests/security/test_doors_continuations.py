"""Continuations on workers (issue 54, item 1): the doors a decision and a continue open now.

* ``metadata`` on ``resume``, ``decisions`` and ``continue`` was accepted and dropped; it is
  stored now, so it is a way in for whatever a caller with a valid key sends: it is bounded
  (``KNEO_SERV_MAX_METADATA_BYTES``: ``413``, nothing recorded) and a secret planted in it
  leaves through no response, log, trace or audit row (the run's execution ``state`` keeps
  the decision as given, like the decision's content).
* ``Prefer: wait=N`` lets a caller hold a request open: an attacker's wait (huge, overflowing,
  repeated, malformed) is cut to ``KNEO_SERV_MAX_WAIT_SECONDS`` or ignored, never a 500.
* A key without the route's scope decides or continues nothing, waiting or not.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from kneo.platform import create_platform
from kneo.service import create_app
from kneo.settings import Settings
from kneo.spec.project import ProjectContext
from kneo.store import open_store
from tests.queue_records import queue_records

REPO = Path(__file__).resolve().parents[2]
SMOKE = "examples/smoke_human_workflow.yaml"
KEYS = {"operator": "planted-op-key-54a1", "reviewer": "planted-rev-key-54a2", "viewer": "v-54a3"}
AUTH = {
    "KNEO_SERV_AUTH_ENABLED": "true",
    "KNEO_SERV_API_KEYS": ";".join(f"{role}:{key}:{role}" for role, key in KEYS.items()),
    "KNEO_SERV_ADMIN_API_KEY": "planted-admin-key-54a4",
    "KNEO_SERV_MAX_WAIT_SECONDS": "1",
    "KNEO_SERV_MAX_METADATA_BYTES": "512",
}
SECRET_KEYED = "md-PLANTED-5555"  # under a secret-looking key
SECRET_TEXT = "md-PLANTED-6666"  # inside a text, as password=...
METADATA = {"password": SECRET_KEYED, "note": f"call me; password={SECRET_TEXT}"}
#: (table, column) that may hold them: the decision as the run continues from it
ALLOWED = {("runs", "state")}


def _h(role: str, **extra: str) -> dict[str, str]:
    key = AUTH["KNEO_SERV_ADMIN_API_KEY"] if role == "admin" else KEYS[role]
    return {"Authorization": f"Bearer {key}", **extra}


@pytest.fixture(params=["sqlite", "postgres"])
def client(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    """A service whose decisions and continues go to the workers (none runs here, so a
    handed-off run waits: what a waiting attacker meets)."""
    monkeypatch.chdir(REPO)
    url = request.getfixturevalue("pg_database")() if request.param == "postgres" else None
    settings = Settings.from_env({**AUTH, "KNEO_SERV_PROFILES_PATH": str(tmp_path / "p")})
    store = open_store(url, settings=settings, state_dir=tmp_path / "state")
    project = ProjectContext.discover(settings=settings)
    manager = create_platform(settings=settings, project=project, store=store)
    app = create_app(
        False, settings=settings, manager=manager, start_worker=False, continuations="queue"
    )
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client
    store.close()


def _paused(client: TestClient) -> dict[str, Any]:
    r = client.post("/v1/runs", headers=_h("operator"), json={"input": "x", "spec_path": SMOKE})
    assert r.status_code == 200 and r.json()["status"] == "paused", r.text
    return dict(r.json())


def _decide(client: TestClient, run: dict[str, Any], route: str, **extra: Any) -> Any:
    decision = {"request_id": run["request_id"], "decision": "approved"}
    headers = _h(extra.pop("role", "reviewer"), **extra.pop("headers", {}))
    body = {**decision, **extra} if route == "resume" else {"decisions": [decision], **extra}
    return client.post(
        f"/v1/human-tasks/{run['continuation_id']}/{route}", headers=headers, json=body
    )


def _failed(client: TestClient) -> str:
    """A run that failed: its worker gave up (the continue route's subject)."""
    from kneo.platform.worker import fail_run

    run = client.post(
        "/v1/runs",
        headers=_h("operator"),
        json={"input": "x", "spec_path": SMOKE, "async_mode": True},
    ).json()
    store = client.app.state.manager.store  # type: ignore[attr-defined]
    record = store.queue.claim("gone", 5.0)
    assert record is not None and store.queue.finish(record.queue_id, "gone")
    fail_run(store, run["run_id"], {"type": "test", "message": "gave up"})
    return str(run["run_id"])


@pytest.mark.parametrize("route", ["resume", "decisions"])
def test_oversized_metadata_is_refused_and_nothing_is_decided(
    client: TestClient, route: str
) -> None:
    run = _paused(client)
    refused = _decide(client, run, route, metadata={"blob": "x" * 600})
    assert refused.status_code == 413, refused.text
    assert refused.json()["error"] == "payload_too_large" and refused.json()["field"] == "metadata"
    task = client.get(f"/v1/human-tasks/{run['continuation_id']}", headers=_h("viewer")).json()
    assert [r["status"] for r in task["requests"]] == ["pending"]
    audit = client.get(
        "/v1/audit-events", headers=_h("admin"), params={"event_type": "human.decision"}
    ).json()
    assert audit["events"] == []


def test_oversized_continue_metadata_is_refused_and_nothing_is_queued(client: TestClient) -> None:
    run_id = _failed(client)
    refused = client.post(
        f"/v1/runs/{run_id}/continue", headers=_h("operator"), json={"metadata": {"b": "x" * 600}}
    )
    assert refused.status_code == 413 and refused.json()["field"] == "metadata", refused.text
    assert client.get(f"/v1/runs/{run_id}", headers=_h("viewer")).json()["status"] == "failed"


def test_a_secret_in_metadata_leaves_through_nothing(
    client: TestClient, caplog: pytest.LogCaptureFixture, request_log: list[logging.LogRecord]
) -> None:
    caplog.set_level(logging.DEBUG)
    outputs = []
    run = _paused(client)
    answered = _decide(client, run, "resume", metadata=METADATA)
    assert answered.status_code == 202, answered.text
    together = _paused(client)
    assert _decide(client, together, "decisions", metadata=METADATA).status_code == 202
    failed = _failed(client)
    continued = client.post(
        f"/v1/runs/{failed}/continue", headers=_h("operator"), json={"metadata": METADATA}
    )
    assert continued.status_code == 202, continued.text
    outputs += [answered.text, continued.text]
    for rid in (run["run_id"], together["run_id"], failed):
        for role in ("viewer", "reviewer", "admin"):
            for route in (
                f"/v1/runs/{rid}",
                f"/v1/runs/{rid}?include=conversation",
                f"/v1/runs/{rid}/trace",
                f"/v1/runs/{rid}/replay",
                f"/v1/runs/{rid}/checkpoints?include_payload=true",
                "/v1/audit-events",
            ):
                response = client.get(route, headers=_h(role))
                assert response.status_code in (200, 403), (role, route, response.text)
                outputs.append(response.text)
    shown = client.get(
        f"/v1/runs/{run['run_id']}?include=conversation", headers=_h("reviewer")
    ).json()
    assert shown["decisions"][0]["metadata"]["password"] == "[REDACTED]"  # kept, redacted
    logs = [r.getMessage() for r in caplog.records + request_log]
    store = client.app.state.manager.store  # type: ignore[attr-defined]
    found = []
    with store.engine.connect() as conn:
        inspector = sa.inspect(conn)
        for table in inspector.get_table_names():
            for column in inspector.get_columns(table):
                rows = conn.execute(sa.text(f'SELECT "{column["name"]}" FROM "{table}"'))
                text = " ".join(str(value) for (value,) in rows)
                if SECRET_KEYED in text or SECRET_TEXT in text:
                    found.append((table, column["name"]))
    assert found and set(found) <= ALLOWED, found  # planted for real, and kept only there
    for secret in (SECRET_KEYED, SECRET_TEXT):
        assert not [o for o in outputs if secret in o]
        assert not [line for line in logs if secret in line]


def test_an_attackers_wait_is_bounded_and_a_malformed_one_ignored(client: TestClient) -> None:
    for prefer in (
        ["wait=99999999999999999999999999"],
        ["wait=3600"] * 50,
        ["wait=-5, wait=1e9, wait=\x7f"],
        ["respond-async; wait=3600"],
    ):
        run = _paused(client)
        headers = [("Authorization", f"Bearer {KEYS['reviewer']}")] + [
            ("Prefer", value) for value in prefer
        ]
        started = time.monotonic()
        answered = client.post(
            f"/v1/human-tasks/{run['continuation_id']}/resume",
            headers=headers,
            json={"request_id": run["request_id"], "decision": "approved"},
        )
        took = time.monotonic() - started
        assert answered.status_code == 202, (prefer, answered.text)
        assert took < 4, (prefer, took)  # KNEO_SERV_MAX_WAIT_SECONDS=1 (plus the request)


def test_a_key_without_the_scope_decides_and_continues_nothing(client: TestClient) -> None:
    run = _paused(client)
    waiting = {"headers": {"Prefer": "wait=1"}}
    for route in ("resume", "decisions"):
        refused = _decide(client, run, route, role="viewer", **waiting)
        assert refused.status_code == 403 and refused.json()["required_scope"] == "human:write"
    failed = _failed(client)
    refused = client.post(
        f"/v1/runs/{failed}/continue", headers=_h("viewer", Prefer="wait=1"), json={}
    )
    assert refused.status_code == 403 and refused.json()["required_scope"] == "runs:write"
    task = client.get(f"/v1/human-tasks/{run['continuation_id']}", headers=_h("viewer")).json()
    assert [r["status"] for r in task["requests"]] == ["pending"]
    assert client.get(f"/v1/runs/{failed}", headers=_h("viewer")).json()["status"] == "failed"
    store = client.app.state.manager.store  # type: ignore[attr-defined]
    assert [r.status for r in queue_records(store, failed)] == ["completed"]
