"""``KneoNotificationsDead`` fires for a receiver's very first dead delivery, in a real
Prometheus scraping a real dispatcher's process (Debian's ``prometheus``; skipped without it,
failed with CI set).

It once missed them: ``kneo_notifications_total{outcome="dead"}`` appeared only at its first
increment, already at 1, and ``increase()`` sees no rise in a series' first sample. A
dispatcher now exports every receiver's series at 0 from the start, and the rule also
catches a series that first appears above 0 (``promtool test rules`` covers that half).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kneo import metrics
from kneo.platform.notifications import start_dispatcher
from kneo.store import NotificationQuery
from tests.deploy.prometheus_server import free_port, running

from .conftest import REPO, receivers_env
from .receiver import Receiver

RULES = REPO / "deploy" / "prometheus" / "kneo-alerts.yaml"
SMOKE = str(REPO / "examples" / "smoke_human_workflow.yaml")
#: a receiver no other test in this process delivers to: its series starts here
NAME = "pager-first-failure"


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only: what is under test is the exposition and the rule, not the outbox."""
    return f"sqlite:///{tmp_path / 'kneo.sqlite'}"


def test_the_first_dead_delivery_fires_the_alert(
    platform: Callable[..., Any], receiver: Receiver, tmp_path: Path
) -> None:
    receiver.status = 500
    hook = {"name": NAME, "url": receiver.url, "secret_env": "NOTIFY_SECRET"}
    manager = platform(
        KNEO_SERV_NOTIFICATIONS_RECEIVERS=receivers_env(hook),
        KNEO_SERV_NOTIFICATIONS_MAX_ATTEMPTS="1",
        KNEO_SERV_NOTIFICATIONS_POLL_SECONDS="0.05",
    )
    metrics.enable()
    port = free_port()
    settings = dataclasses.replace(manager.settings, metrics_port=port, metrics_host="127.0.0.1")
    server = metrics.serve_port(manager.store, settings)
    dispatcher = start_dispatcher(manager, manager.settings)
    assert dispatcher is not None
    series = f'kneo_notifications_total{{receiver="{NAME}",outcome="dead"}}'
    try:
        with running(tmp_path, [f"127.0.0.1:{port}"], rule_files=[RULES]) as prometheus:
            # before any delivery, the receiver's dead count is scraped at 0
            zero = prometheus.wait_for(f"{series} at 0", lambda: prometheus.query(series))
            assert zero[0]["value"][1] == "0"
            assert not [a for a in prometheus.alerts() if a["labels"].get("receiver") == NAME]
            manager.run_from_spec(input_text="hello", spec_path=SMOKE)  # human.requested
            fired = prometheus.wait_for(
                "KneoNotificationsDead",
                lambda: [
                    a
                    for a in prometheus.alerts()
                    if a["labels"]["alertname"] == "KneoNotificationsDead"
                    and a["labels"].get("receiver") == NAME
                ],
            )
    finally:
        dispatcher.stop()
        server.shutdown()
    assert fired[0]["state"] == "firing"
    assert len(receiver.requests) == 1
    [dead] = manager.store.notifications.list_notifications(NotificationQuery(status="dead")).items
    assert dead.receiver == NAME
