"""``kneo notifications list|retry|test`` (a real process) and ``/v1/notifications``: a dead
delivery and its attempt count are visible; retry makes it due again."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from kneo.service.app import create_app
from kneo.store import AuditQuery, DeliveryOutcome
from tests.cli_zygote import KNEO

from .conftest import REPO, SECRET, receivers_env
from .receiver import Receiver


def _dead_row(store: Any, attempts: int = 3) -> int:
    """A delivery that failed ``attempts`` times, the last making it dead."""
    with store.transaction() as tx:
        tx.add_audit("run.failed", run_id="r1", payload={"environment": "prod"})
    store.notifications.route_notifications(lambda event: ["hook"])
    for attempt in range(attempts):
        [claimed] = store.notifications.claim_notifications("t", 30.0)
        last = attempt == attempts - 1
        retry_at = None if last else store.clock.now()
        outcome = DeliveryOutcome(claimed.id, sent=False, error="HTTP 500", retry_at=retry_at)
        store.notifications.finish_notifications("t", [outcome])
    return int(claimed.id)


def _kneo(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    child = {k: v for k, v in os.environ.items() if not k.startswith("KNEO")}
    child |= env | {"PYTHONPATH": str(REPO), "COLUMNS": "200"}
    return subprocess.run(
        [*KNEO, "notifications", *args],
        cwd=cwd,
        env=child,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_lists_dead_with_attempts_retries_and_tests_a_receiver(
    platform: Any, database_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    store = platform().store
    dead_id = _dead_row(store)
    env = {
        "KNEO_SERV_DATABASE_URL": database_url,
        "NOTIFY_SECRET": SECRET,
        "KNEO_SERV_NOTIFICATIONS_RECEIVERS": receivers_env(
            {"name": "hook", "url": receiver.url, "secret_env": "NOTIFY_SECRET"}
        ),
    }
    listed = _kneo(tmp_path, env, "list", "--status", "dead", "--json")
    assert listed.returncode == 0, listed.stderr
    data = json.loads(listed.stdout)
    assert data["counts"]["dead"] == 1
    [row] = data["notifications"]
    assert (row["id"], row["status"], row["attempts"], row["last_error"]) == (
        dead_id,
        "dead",
        3,
        "HTTP 500",
    )
    table = _kneo(tmp_path, env, "list")
    assert "1 dead" in table.stdout and "run.failed" in table.stdout
    retried = _kneo(tmp_path, env, "retry", "--json")
    assert json.loads(retried.stdout) == {"retried": 1}
    [again] = store.notifications.list_notifications().items
    assert (again.status, again.attempts) == ("pending", 0)

    sent = _kneo(tmp_path, env, "test", "hook", "--json")
    assert sent.returncode == 0, sent.stderr
    assert json.loads(sent.stdout) == {"receiver": "hook", "status_code": 200}
    [(headers, body)] = receiver.requests
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["x-kneo-signature-256"] == expected
    assert json.loads(body)["type"] == "notification.test"
    assert SECRET not in sent.stdout + sent.stderr + table.stdout

    unknown = _kneo(tmp_path, env, "test", "nobody")
    assert unknown.returncode != 0 and "error[not_found]" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    receiver.status = 500
    failing = _kneo(tmp_path, env, "test", "hook")
    assert failing.returncode == 1 and "error[notification_failed]" in failing.stderr


def test_api_lists_counts_and_retries(platform: Any) -> None:
    manager = platform(KNEO_SERV_ADMIN_API_KEY="admin-key-0123456789")
    dead_id = _dead_row(manager.store, attempts=2)
    app = create_app(settings=manager.settings, manager=manager, start_worker=False)
    admin = {"Authorization": "Bearer admin-key-0123456789"}
    with TestClient(app) as client:
        assert client.get("/v1/notifications").status_code == 401
        body = client.get("/v1/notifications", params={"status": "dead"}, headers=admin).json()
        assert body["counts"] == {"pending": 0, "sending": 0, "sent": 0, "dead": 1}
        [row] = body["notifications"]
        assert (row["id"], row["attempts"], row["event_type"]) == (dead_id, 2, "run.failed")
        bad = client.get("/v1/notifications", params={"status": "nope"}, headers=admin)
        assert bad.status_code == 422
        retried = client.post("/v1/notifications/retry", json={"ids": [dead_id]}, headers=admin)
        assert retried.json() == {"retried": 1}
        body = client.get("/v1/notifications", headers=admin).json()
        assert body["counts"]["pending"] == 1 and body["counts"]["dead"] == 0
        unknown = client.post("/v1/notifications/retry", json={"idz": [1]}, headers=admin)
        assert unknown.status_code == 422
    audit = manager.store.audit.list_audit(AuditQuery(event_type="notifications.retried")).items
    assert [a.actor for a in audit] == ["admin"]


def test_check_names_each_person_whose_link_cannot_decide(tmp_path: Path) -> None:
    """``kneo notifications check``: a Slack app reaches alice (no key, no role) and the
    reviewer key's person; alice is reported, with the reason, and the command exits 1; a
    role-map rule for her makes it pass. A shared webhook reaches nobody personally."""
    receivers = receivers_env(
        {"name": "team", "type": "slack_app", "url": "https://slack.com/api",
         "channel": "C0KNEO", "token_env": "SLACK_BOT_TOKEN",
         "signing_secret_env": "SLACK_SIGNING_SECRET"},
        {"name": "hook", "url": "https://hooks.example/kneo"},
    )  # fmt: skip
    people = [
        {"user": "alice@example.com", "slack": "U0ALICE01"},
        {"user": "reviewer", "slack": "U0REV0001"},
    ]
    env = {
        "KNEO_SERV_DATABASE_URL": f"sqlite:///{tmp_path / 'kneo.sqlite'}",
        "KNEO_SERV_AUTH_ENABLED": "true",
        "KNEO_SERV_API_KEYS": "reviewer:reviewer-key-0123456789:reviewer",
        "KNEO_SERV_NOTIFICATIONS_RECEIVERS": receivers,
        "KNEO_SERV_NOTIFICATIONS_PEOPLE": json.dumps(people),
        "SLACK_BOT_TOKEN": "xoxb-check",
        "SLACK_SIGNING_SECRET": "signing-check",
    }
    failed = _kneo(tmp_path, env, "check", "--json")
    assert failed.returncode == 1, failed.stderr
    report = json.loads(failed.stdout)
    assert [(r["receiver"], r["person"]) for r in report["undecided"]] == [
        ("team", "alice@example.com")
    ]
    assert "human:write" in report["undecided"][0]["reason"]
    assert {r["receiver"]: r["links"] for r in report["receivers"]} == {
        "team": "personal",
        "hook": "channel",
    }
    env["KNEO_SERV_OIDC_ISSUER"] = "https://idp.example"
    env["KNEO_SERV_OIDC_AUDIENCE"] = "kneo"
    env["KNEO_SERV_OIDC_ROLES"] = "user:alice@example.com=reviewer"
    passed = _kneo(tmp_path, env, "check")
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "every person a receiver reaches can decide" in passed.stdout


def test_a_service_warns_at_start_of_each_person_who_cannot_decide(
    tmp_path: Path, caplog: Any
) -> None:
    import logging

    from kneo.platform import create_platform
    from kneo.settings import Settings
    from kneo.spec.project import ProjectContext

    settings = Settings.from_env(
        {
            "KNEO_SERV_DATABASE_URL": f"sqlite:///{tmp_path / 'kneo.sqlite'}",
            "KNEO_SERV_PROFILES_PATH": str(tmp_path / "profiles.json"),
            "KNEO_SERV_AUTH_ENABLED": "true",
            "KNEO_SERV_API_KEYS": "reviewer:reviewer-key-0123456789:reviewer",
            "KNEO_SERV_NOTIFICATIONS_RECEIVERS": receivers_env(
                {"name": "mine", "url": "https://hooks.example/kneo", "personal_links": True}
            ),
            "KNEO_SERV_NOTIFICATIONS_PEOPLE": json.dumps([{"user": "carol"}, {"user": "reviewer"}]),
        }
    )
    manager = create_platform(settings, ProjectContext.discover(cwd=tmp_path, settings=settings))
    app = create_app(False, settings=settings, manager=manager, start_worker=False)
    with caplog.at_level(logging.WARNING), TestClient(app):
        pass
    manager.store.close()
    assert "notification receiver mine reaches carol, whose link" in caplog.text
    assert "reaches reviewer" not in caplog.text  # the reviewer key decides
