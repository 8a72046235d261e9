"""The outbox: which events write a row, in the same transaction as their cause; routing by
filters; the expiring sweep; messages (Slack, links, redaction); the receivers' config."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from kneo.errors import ConfigError
from kneo.notification_events import NOTIFICATION_EVENTS, NOTIFIED_AUDITS
from kneo.platform.notifications import (
    Dispatcher,
    Receiver,
    load_receivers,
    message,
    retry_delay,
    slack_message,
    sweep_expiring,
)
from kneo.settings import Settings
from kneo.spec.project import NotificationsConfig
from kneo.store import DeliveryOutcome

from .conftest import REPO, receivers_env
from .receiver import Receiver as LocalReceiver

PLANTED = "sk-planted0123456789abcdefghijklmnopqrstuv"


def _events(store: Any) -> list[Any]:
    seen: list[Any] = []
    store.notifications.route_notifications(lambda event: seen.append(event) or [])
    return seen


@pytest.mark.parametrize("audit_type", sorted(NOTIFIED_AUDITS))
def test_each_notified_audit_writes_its_event_in_the_same_transaction(
    platform: Any, audit_type: str
) -> None:
    store = platform().store
    with store.transaction() as tx:
        audit = tx.add_audit(
            audit_type, actor="ann", run_id="r1", payload={"environment": "prod", "assignee": "bo"}
        )
    [event] = _events(store)
    assert (event.event_id, event.event_type) == (audit.event_id, NOTIFIED_AUDITS[audit_type])
    assert (event.environment, event.assignee, event.severity) == (
        "prod",
        "bo",
        NOTIFICATION_EVENTS[event.event_type],
    )
    assert _events(store) == []  # routed once


def test_a_rolled_back_event_writes_no_notification_and_others_none(platform: Any) -> None:
    store = platform().store
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.add_audit("run.failed", run_id="r1")
        raise RuntimeError("crash before commit")
    with store.transaction() as tx:
        tx.add_audit("run.created", run_id="r2")  # not a notified event
    assert _events(store) == []


def test_a_failed_run_is_notified_with_its_run(platform: Any) -> None:
    manager = platform()
    spec = {
        "version": "v1",
        "workflow": {
            "type": "sequential",
            "name": "boom",
            "steps": [{"id": "s1", "kind": "function", "ref": "tests.service.failing_steps:boom"}],
        },
    }
    failed = manager.run_from_spec(input_text="not json", spec=spec)
    assert failed.status == "failed"
    [event] = _events(manager.store)
    assert (event.event_type, event.run_id, event.environment) == (
        "run.failed",
        failed.run_id,
        "dev",
    )
    assert event.payload["workflow"] == "boom"


def test_receivers_filter_by_type_environment_assignee_and_severity(platform: Any) -> None:
    store = platform().store
    receivers = [
        Receiver("all", "webhook", "http://x"),
        Receiver("human", "webhook", "http://x", events=("human.*",)),
        Receiver("prod", "webhook", "http://x", environments=("prod",)),
        Receiver("bo", "webhook", "http://x", assignees=("bo",)),
        Receiver("errors", "webhook", "http://x", severity="error"),
    ]
    dispatcher = Dispatcher(store, receivers, Settings().notifications, owner="t")
    with store.transaction() as tx:
        tx.add_audit("human.requested", payload={"environment": "prod", "assignee": "bo"})
        tx.add_audit("run.failed", payload={"environment": "dev"})
    store.notifications.route_notifications(dispatcher.route)
    got = {(n.event.event_type, n.receiver) for n in store.notifications.list_notifications().items}
    assert got == {
        ("human.requested", "all"),
        ("human.requested", "human"),
        ("human.requested", "prod"),
        ("human.requested", "bo"),
        ("run.failed", "all"),
        ("run.failed", "errors"),
    }


def test_human_expiring_is_written_once_per_expiry(platform: Any) -> None:
    manager = platform()
    smoke = str(REPO / "examples" / "smoke_human_workflow.yaml")
    paused = manager.run_from_spec(input_text="hi", spec_path=smoke)  # expires in 3600 s
    store = manager.store
    now = store.clock.now()
    _events(store)  # human.requested, routed
    assert sweep_expiring(store, now, lead_seconds=600) == 0  # not yet within the lead
    assert sweep_expiring(store, now, lead_seconds=7200) == 1
    assert sweep_expiring(store, now + timedelta(seconds=5), lead_seconds=7200) == 0
    [event] = _events(store)
    assert (event.event_type, event.run_id) == ("human.expiring", paused.run_id)
    assert (event.assignee, event.environment, event.severity) == ("operator", "dev", "warning")
    body = message(event, "https://kneo.example")
    assert body["link"] == f"https://kneo.example/ui/tasks/{event.continuation_id}"
    assert "expires at" in body["summary"]


def test_a_planted_secret_never_reaches_a_receiver_or_the_listing(platform: Any) -> None:
    hook = LocalReceiver().start()
    try:
        manager = platform(
            KNEO_SERV_NOTIFICATIONS_RECEIVERS=receivers_env(
                {"name": "hook", "url_env": "HOOK_URL", "secret_env": "NOTIFY_SECRET"},
                {"name": "chat", "type": "slack", "url_env": "HOOK_URL"},
            ),
            HOOK_URL=hook.url + "/T000/" + PLANTED,
        )
        with manager.store.transaction() as tx:
            tx.add_audit(
                "run.failed",
                run_id="r1",
                payload={
                    "environment": "prod",
                    "api_key": PLANTED,
                    "message": f"provider said: Authorization: Bearer {PLANTED}",
                },
            )
        dispatcher = Dispatcher(
            manager.store,
            load_receivers(manager.settings),
            manager.settings.notifications,
            owner="t",
        )
        dispatcher.run_once()
        dispatcher.stop()
    finally:
        hook.stop()
    assert len(hook.requests) == 2
    slack = next(json.loads(b) for _, b in hook.requests if b"blocks" in b)
    assert slack["text"].startswith("[error] run.failed")
    from kneo.platform.notifications import list_view

    listing = json.dumps(list_view(manager.store))
    for headers, body in hook.requests:
        assert PLANTED not in body.decode() and PLANTED not in json.dumps(headers)
    assert PLANTED not in listing and "whsec" not in listing


def test_slack_body_carries_summary_and_link() -> None:
    body = {
        "id": "evt_1",
        "type": "bundle.promoted",
        "severity": "info",
        "summary": "demo (prod) was promoted",
        "link": "https://k/ui/registry/demo/prod",
    }
    slack = slack_message(body)
    assert slack["text"] == "[info] bundle.promoted: demo (prod) was promoted"
    assert "<https://k/ui/registry/demo/prod|Open in Kneo>" in slack["blocks"][0]["text"]["text"]


def test_retry_delay_grows_exponentially_with_jitter_and_a_cap() -> None:
    low = [retry_delay(n, 1.0, 60.0, lambda: 0.0) for n in (1, 2, 3, 4, 10)]
    high = [retry_delay(n, 1.0, 60.0, lambda: 0.999999) for n in (1, 2, 3, 4, 10)]
    assert low == [0.5, 1.0, 2.0, 4.0, 30.0]
    assert [round(h, 3) for h in high] == [1.0, 2.0, 4.0, 8.0, 60.0]


def test_bad_receiver_config_is_a_config_error_naming_the_field() -> None:
    def load(raw: str, **env: str) -> Any:
        return load_receivers(Settings.from_env({"KNEO_SERV_NOTIFICATIONS_RECEIVERS": raw, **env}))

    with pytest.raises(ConfigError) as bad_json:
        load("[{")
    assert bad_json.value.details["variable"] == "KNEO_SERV_NOTIFICATIONS_RECEIVERS"
    with pytest.raises(ConfigError, match=r"receivers\.0\.events"):
        load('[{"name": "a", "url": "http://x", "events": ["nope.*"]}]')
    with pytest.raises(ConfigError, match="exactly one of url and url_env"):
        load('[{"name": "a"}]')
    with pytest.raises(ConfigError, match="SECRET_X is not set") as unset:
        load('[{"name": "a", "url": "http://x", "secret_env": "SECRET_X"}]')
    assert unset.value.details["variable"] == "SECRET_X"
    with pytest.raises(ConfigError, match="unique"):
        load('[{"name": "a", "url": "http://x"}, {"name": "a", "url": "http://y"}]')
    [ok] = load('[{"name": "a", "url": "http://x", "secret_env": "S"}]', S="s3cr3t")
    assert ok.secret == "s3cr3t" and "s3cr3t" not in repr(ok) and "http://x" not in repr(ok)


def test_the_committed_json_schema_accepts_what_the_model_accepts() -> None:
    schema = json.loads(
        (REPO / "kneo" / "schemas" / "notification_receivers.schema.json").read_text()
    )
    validator = Draft202012Validator(schema)
    good = [
        {"name": "ops", "url": "https://h/x", "secret_env": "S", "events": ["human.*"]},
        {"name": "chat", "type": "slack", "url_env": "SLACK_URL", "severity": "error"},
    ]
    assert list(validator.iter_errors(good)) == []
    NotificationsConfig.model_validate({"receivers": good})
    assert list(validator.iter_errors([{"name": "x", "url": "h", "colour": 1}]))


def test_a_project_config_block_is_read(tmp_path: Path) -> None:
    from kneo.spec.project import ProjectContext

    (tmp_path / ".kneo").mkdir()
    (tmp_path / ".kneo" / "config.yaml").write_text(
        "notifications:\n  receivers:\n    - name: ops\n      url: https://h/x\n"
        "      environments: [prod]\n"
    )
    settings = Settings.from_env({})
    project = ProjectContext.discover(cwd=tmp_path, settings=settings)
    [ops] = load_receivers(settings, project.config)
    assert (ops.name, ops.environments) == ("ops", ("prod",))


def test_the_documented_config_and_verification_snippet_work() -> None:
    import re
    from datetime import UTC, datetime, timedelta

    import yaml

    from kneo.platform.webhooks import wire_request
    from kneo.spec.project import ProjectConfig

    page = (REPO / "docs" / "notifications.md").read_text()
    config = re.search(r"```yaml\n(.*?)```", page, re.S)
    snippet = re.search(r"```python\n(.*?)```", page, re.S)
    assert config and snippet
    parsed = ProjectConfig.model_validate(yaml.safe_load(config.group(1)))
    receivers = parsed.notifications.receivers
    assert [(r.name, r.format) for r in receivers] == [
        ("ops-hook", "kneo"),
        ("event-bus", "cloudevents"),
        ("prod-chat", "kneo"),
    ]
    secret = "whsec_" + "a2VuZW8ta2V5LWJ5dGVz"
    now = datetime.now(UTC)
    for sent_at, verified in ((now, True), (now - timedelta(minutes=6), False)):
        body, headers = wire_request(
            {"id": "evt_1"}, message_id="evt_1", event_type="t", secret=secret, sent_at=sent_at
        )
        namespace: dict[str, Any] = {"secret": secret, "body": body, "headers": headers}
        exec(snippet.group(1), namespace)
        assert ("message" in namespace) is verified, sent_at


def test_retention_prunes_finished_deliveries_and_the_events_done_with(platform: Any) -> None:
    from kneo.setting_groups import RetentionDays

    store = platform().store
    for event_id in ("e1", "e2", "e3"):
        assert store.notifications.add_notification_event(event_id, "run.failed", payload={})
    assert store.notifications.route_notifications(lambda event: ["a", "b"]) == 3
    rows = store.notifications.claim_notifications("me", 60, limit=10)
    assert len(rows) == 6
    for row in rows:
        if (row.event.event_id, row.receiver) == ("e3", "b"):
            continue  # still being delivered: its event must stay
        dead = (row.event.event_id, row.receiver) == ("e2", "b")
        outcome = DeliveryOutcome(row.id, sent=not dead, error="HTTP 500" if dead else None)
        store.notifications.finish_notifications("me", [outcome])
    later = store.clock.now() + timedelta(days=2)
    kept = RetentionDays(queue_days=3)
    assert store.maintenance.prune_retention(kept, now=later)["queue"] == 0  # nothing old enough
    counts = store.maintenance.prune_retention(RetentionDays(queue_days=1), now=later)
    assert counts["queue"] == 5
    left = store.notifications.list_notifications().items
    assert [(r.event.event_id, r.receiver, r.status) for r in left] == [("e3", "b", "sending")]
    assert store.notifications.route_notifications(lambda event: ["c"]) == 0  # no event came back
    assert not store.notifications.add_notification_event("e3", "run.failed")  # e3 is still there
    assert store.notifications.add_notification_event("e1", "run.failed")  # e1 was pruned
