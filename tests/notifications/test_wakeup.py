"""A committed notification event wakes the dispatcher: delivery does not wait for its poll.

The dispatcher here polls every 30 s; each event must arrive within seconds. On one box the
process that wrote the event wakes its own dispatcher; on PostgreSQL the database's trigger
``NOTIFY``s every process, so an event another process (here: another store on the same
database, which shares no in-process channel) wrote wakes it too.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from kneo.platform.notifications import start_dispatcher

from .receiver import Receiver
from .test_delivery import SMOKE, hook_env, wait_for

SLOW_POLL = {"KNEO_SERV_NOTIFICATIONS_POLL_SECONDS": "30"}


def _delivered_within(manager: Any, writer: Any, receiver: Receiver) -> float:
    dispatcher = start_dispatcher(manager, manager.settings)
    assert dispatcher is not None
    try:
        time.sleep(0.5)  # the dispatcher's first claim found nothing: it waits its poll now
        start = time.monotonic()
        paused = writer.run_from_spec(input_text="hello", spec_path=SMOKE)
        assert paused.status == "paused"
        wait_for(lambda: receiver.requests, timeout=15)
        return time.monotonic() - start
    finally:
        dispatcher.stop()


def test_an_event_this_process_commits_is_delivered_at_once(
    platform: Any, receiver: Receiver
) -> None:
    manager = platform(**hook_env(receiver.url), **SLOW_POLL)
    assert _delivered_within(manager, manager, receiver) < 5


def test_an_event_another_process_commits_wakes_the_dispatcher_on_postgresql(
    platform: Any, receiver: Receiver, database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite's processes share no channel: the dispatcher's poll finds it")
    manager = platform(**hook_env(receiver.url), **SLOW_POLL)
    other = platform(**hook_env(receiver.url), **SLOW_POLL)
    assert other.store.wakeups is not manager.store.wakeups
    assert _delivered_within(manager, other, receiver) < 5
