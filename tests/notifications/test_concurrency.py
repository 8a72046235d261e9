"""Concurrent, isolated delivery on SQLite and PostgreSQL: a receiver that hangs until the
timeout holds only its own slots (the others' deliveries arrive meanwhile), never more than
``KNEO_SERV_NOTIFICATIONS_RECEIVER_CONCURRENCY`` at once; a task's events reach a receiver in
order even when the first one is retried; two dispatchers on one database deliver each
event once."""

from __future__ import annotations

import time
from typing import Any

from kneo.platform.notifications import start_dispatcher
from kneo.store import NotificationQuery

from .conftest import receivers_env
from .receiver import Receiver
from .test_delivery import FAST, rows, wait_for


def _env(*hooks: tuple[str, Receiver], **extra: str) -> dict[str, str]:
    receivers = [{"name": name, "url": hook.url} for name, hook in hooks]
    return {"KNEO_SERV_NOTIFICATIONS_RECEIVERS": receivers_env(*receivers), **FAST, **extra}


def _events(manager: Any, count: int, *, task: str | None = None, prefix: str = "ev") -> None:
    for i in range(count):
        manager.store.notifications.add_notification_event(
            f"{prefix}{i:03d}",
            "run.failed",
            run_id=f"run{i}",
            continuation_id=task,
            payload={"environment": "dev"},
        )


def _sent(manager: Any, receiver: str) -> list[Any]:
    found = manager.store.notifications.list_notifications(
        NotificationQuery(receiver=receiver, status="sent", limit=1000)
    )
    return list(found.items)


def test_a_hanging_receiver_never_delays_another(platform: Any) -> None:
    slow, fast = Receiver().start(), Receiver().start()
    slow.hold_seconds = 30  # past the 8 s timeout: every attempt to it hangs, then fails
    try:
        manager = platform(
            **_env(
                ("slow", slow),
                ("fast", fast),
                KNEO_SERV_NOTIFICATIONS_TIMEOUT_SECONDS="8",
                KNEO_SERV_NOTIFICATIONS_CONCURRENCY="6",
                KNEO_SERV_NOTIFICATIONS_RECEIVER_CONCURRENCY="3",
            )
        )
        _events(manager, 30)
        dispatcher = start_dispatcher(manager, manager.settings)
        assert dispatcher is not None
        try:
            wait_for(lambda: len(_sent(manager, "fast")) == 30, timeout=30)
            hanging = slow.in_flight
            slow_rows = manager.store.notifications.list_notifications(
                NotificationQuery(receiver="slow", limit=100)
            ).items
        finally:
            dispatcher.stop(timeout=1)
    finally:
        slow.stop()
        fast.stop()
    # all 30 reached the fast receiver, three at a time, while the slow one still held its
    # first three (their 8 s timeout not yet up): nothing waited behind them
    assert hanging == 3
    assert not [r for r in slow_rows if r.last_error or r.attempts > 1]
    assert sorted(fast.event_ids()) == [f"ev{i:03d}" for i in range(30)]
    assert slow.max_in_flight == 3 and fast.max_in_flight <= 3


def test_a_tasks_events_arrive_in_order_while_others_pass(platform: Any) -> None:
    hook = Receiver().start()
    hook.fail_once = {"a1"}  # the task's first event fails once, and is retried after ~0.5 s
    try:
        manager = platform(**_env(("hook", hook), KNEO_SERV_NOTIFICATIONS_BACKOFF_SECONDS="0.5"))
        store = manager.store
        dispatcher = start_dispatcher(manager, manager.settings)
        assert dispatcher is not None
        dispatcher.stop()  # routes by hand below: one event at a time, in order
        for event_id, event_type, task in (
            ("a1", "human.requested", "task-a"),
            ("a2", "human.decision", "task-a"),
            ("b1", "human.requested", "task-b"),
        ):
            store.notifications.add_notification_event(event_id, event_type, continuation_id=task)
            store.notifications.route_notifications(dispatcher.route)
        dispatcher = start_dispatcher(manager, manager.settings)
        assert dispatcher is not None
        try:
            wait_for(lambda: len(_sent(manager, "hook")) == 3)
        finally:
            dispatcher.stop()
    finally:
        hook.stop()
    arrived = list(zip(hook.event_ids(), hook.answers, strict=True))
    assert ("a1", 500) in arrived[:2]
    # b1 (another task) went at once; a2 waited for a1's retry to succeed
    assert arrived.index(("b1", 200)) < arrived.index(("a1", 200)) < arrived.index(("a2", 200))
    assert len(arrived) == 4


def test_two_dispatchers_deliver_each_event_once(platform: Any) -> None:
    hook = Receiver().start()
    hook.hold_seconds = 0.02
    try:
        env = _env(("hook", hook))
        first, second = platform(**env), platform(**env)
        _events(first, 120)
        dispatchers = [start_dispatcher(m, m.settings) for m in (first, second)]
        try:
            wait_for(lambda: len(_sent(first, "hook")) == 120, timeout=60)
            time.sleep(0.3)  # nothing else arrives
        finally:
            for dispatcher in dispatchers:
                assert dispatcher is not None
                dispatcher.stop()
    finally:
        hook.stop()
    ids = hook.event_ids()
    assert sorted(ids) == [f"ev{i:03d}" for i in range(120)]  # each once, none twice
    assert {row.attempts for row in rows(first)} == {1}
