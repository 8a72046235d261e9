"""Delivery to a real local HTTP receiver, on SQLite and PostgreSQL: one signed
``human.requested`` per pause; a receiver that was down gets it later, once; a receiver that
always fails ends ``dead`` after N attempts; a dispatcher killed mid-delivery (``kill -9``)
leaves a row that another delivers again under the same event id."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kneo.platform.notifications import start_dispatcher
from kneo.store import NotificationQuery
from tests.cli_zygote import KNEO

from .conftest import REPO, SECRET, receivers_env
from .receiver import Receiver

SMOKE = str(REPO / "examples" / "smoke_human_workflow.yaml")
FAST = {
    "KNEO_SERV_NOTIFICATIONS_POLL_SECONDS": "0.05",
    "KNEO_SERV_NOTIFICATIONS_BACKOFF_SECONDS": "0.05",
    "KNEO_SERV_NOTIFICATIONS_BACKOFF_MAX_SECONDS": "0.2",
}


def wait_for(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {check}")


def hook_env(url: str, **extra: str) -> dict[str, str]:
    hook = {"name": "hook", "url": url, "secret_env": "NOTIFY_SECRET"}
    return {"KNEO_SERV_NOTIFICATIONS_RECEIVERS": receivers_env(hook), **extra}


def rows(manager: Any) -> list[Any]:
    return manager.store.notifications.list_notifications().items


def test_a_pause_sends_one_signed_human_requested(platform: Any, receiver: Receiver) -> None:
    manager = platform(**hook_env(receiver.url), KNEO_SERV_PUBLIC_URL="https://kneo.example/")
    dispatcher = start_dispatcher(manager, manager.settings)
    assert dispatcher is not None
    try:
        paused = manager.run_from_spec(input_text="hello", spec_path=SMOKE)
        assert paused.status == "paused"
        wait_for(lambda: [r for r in rows(manager) if r.status == "sent"])
        time.sleep(0.3)  # nothing else arrives
    finally:
        dispatcher.stop()
    assert len(receiver.requests) == 1
    headers, body = receiver.requests[0]
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["x-kneo-signature-256"], expected)
    message = json.loads(body)
    assert message["type"] == headers["x-kneo-event"] == "human.requested"
    assert message["id"] == headers["x-kneo-event-id"]
    assert message["run_id"] == paused.run_id
    cid = message["continuation_id"]
    assert message["link"] == f"https://kneo.example/ui/tasks/{cid}"
    assert message["assignee"] == "operator" and message["environment"] == "dev"
    [row] = rows(manager)
    assert (row.status, row.attempts, row.receiver) == ("sent", 1, "hook")
    assert row.event.event_id == message["id"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_receiver_that_was_down_gets_it_later_once(platform: Any) -> None:
    down = Receiver(_free_port())  # nothing listens there yet
    manager = platform(**hook_env(down.url, **FAST))
    dispatcher = start_dispatcher(manager, manager.settings)
    assert dispatcher is not None
    try:
        manager.run_from_spec(input_text="hello", spec_path=SMOKE)
        failed = wait_for(lambda: [r for r in rows(manager) if r.attempts >= 3])
        assert failed[0].status in ("pending", "sending") and failed[0].last_error
        assert "127.0.0.1" not in failed[0].last_error  # the URL may be a secret (Slack)
        down.start()
        wait_for(lambda: [r for r in rows(manager) if r.status == "sent"])
        time.sleep(0.5)
    finally:
        dispatcher.stop()
        down.stop()
    assert len(down.requests) == 1
    assert down.bodies()[0]["type"] == "human.requested"


def test_a_receiver_that_always_fails_ends_dead_after_n_attempts(
    platform: Any, receiver: Receiver
) -> None:
    receiver.status = 500
    manager = platform(**hook_env(receiver.url, KNEO_SERV_NOTIFICATIONS_MAX_ATTEMPTS="3", **FAST))
    before = _attempts(manager)
    dispatcher = start_dispatcher(manager, manager.settings)
    assert dispatcher is not None
    try:
        manager.run_from_spec(input_text="hello", spec_path=SMOKE)
        [dead] = wait_for(
            lambda: (
                manager.store.notifications.list_notifications(
                    NotificationQuery(status="dead")
                ).items
            )
        )
        time.sleep(0.4)  # and no further attempt
    finally:
        dispatcher.stop()
    assert (dead.attempts, dead.last_error) == (3, "HTTP 500")
    assert len(receiver.requests) == 3
    assert len(set(receiver.event_ids())) == 1  # one event, retried
    assert manager.store.notifications.notification_counts().deliveries == {("hook", "dead"): 1}
    # retry makes it due again with a fresh budget; a receiver back up gets it
    receiver.status = 200
    assert manager.store.notifications.retry_notifications() == 1
    dispatcher = start_dispatcher(manager, manager.settings)
    assert dispatcher is not None
    try:
        wait_for(
            lambda: (
                manager.store.notifications.list_notifications(
                    NotificationQuery(status="sent")
                ).items
            )
        )
    finally:
        dispatcher.stop()
    assert len(receiver.requests) == 4
    after = _attempts(manager)  # kneo_notifications_total: every attempt, by its outcome
    assert {k: after[k] - before[k] for k in after} == {"failed": 2, "dead": 1, "sent": 1}


def _attempts(manager: Any) -> dict[str, float]:
    """This process's ``kneo_notifications_total{receiver="hook"}`` by outcome, summed over
    projects (an earlier test in this process may have left another project's series)."""
    from prometheus_client.parser import text_string_to_metric_families

    from kneo import metrics

    metrics.enable()
    body, _ = metrics.render(metrics.exposition_registry(None, manager.settings))
    found = dict.fromkeys(("failed", "dead", "sent"), 0.0)
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == "kneo_notifications_total" and sample.labels["receiver"] == "hook":
                found[sample.labels["outcome"]] += sample.value
    return found


def test_a_dispatcher_killed_mid_delivery_leaves_it_to_another_once_by_event_id(
    platform: Any, receiver: Receiver, tmp_path: Path, database_url: str
) -> None:
    env = hook_env(receiver.url, KNEO_SERV_NOTIFICATIONS_LEASE_SECONDS="2", **FAST)
    manager = platform(**env)
    paused = manager.run_from_spec(input_text="hello", spec_path=SMOKE)
    assert paused.status == "paused"
    receiver.hold_seconds = 30  # the first delivery hangs: its sender dies meanwhile
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("KNEO")}
    child_env |= env | {
        "KNEO_SERV_DATABASE_URL": database_url,
        "NOTIFY_SECRET": SECRET,
        "PYTHONPATH": str(REPO),
    }
    worker = subprocess.Popen(
        [*KNEO, "worker"],
        cwd=tmp_path,
        env=child_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert receiver.got.wait(60), "the worker never delivered"
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)
    receiver.hold_seconds = 0
    [held] = rows(manager)
    assert (held.status, held.attempts) == ("sending", 1)
    dispatcher = start_dispatcher(manager, manager.settings)  # after the lease lapses
    assert dispatcher is not None
    try:
        wait_for(lambda: [r for r in rows(manager) if r.status == "sent"])
        time.sleep(0.3)
    finally:
        dispatcher.stop()
    [row] = rows(manager)
    assert (row.status, row.attempts) == ("sent", 2)
    ids = receiver.event_ids()
    assert len(ids) == 2 and len(set(ids)) == 1  # delivered again; the receiver dedupes by id
