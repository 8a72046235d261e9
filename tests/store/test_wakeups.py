"""Wake-ups between the processes of one database (``store.wakeups``): a queued run wakes the
workers, a run that moved wakes its watchers with what the mover knows of it, a watcher that
arrives just after the move is woken at once, a failing callback fails no committer; and on
PostgreSQL the same wake-ups cross from one store (process) to another by LISTEN/NOTIFY."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from kneo.settings import Settings
from kneo.store import Store, open_store
from kneo.store.coordination import wakeups


def _store(url: str) -> Store:
    return open_store(url, settings=Settings.from_env({}))


def test_in_one_process(tmp_path: Path) -> None:
    store = _store(f"sqlite:///{tmp_path / 'k.sqlite'}")
    try:
        queued: list[str] = []
        moved: list[object] = []
        stop_queued = store.wakeups.on_queued(lambda: queued.append("woken"))
        stop_watch = store.wakeups.watch("run_a", moved.append)
        store.wakeups.queued("run_a")
        store.wakeups.moved("run_b", "not yours")
        store.wakeups.moved("run_a", "paused")
        assert queued == ["woken"] and moved == ["paused"]
        late: list[object] = []  # moved before the watch: woken at once, told nothing
        store.wakeups.watch("run_a", late.append)
        assert late == [None]
        stop_queued()
        stop_watch()
        store.wakeups.queued("run_c")
        store.wakeups.moved("run_a", "again")
        assert queued == ["woken"] and moved == ["paused"]
        store.for_project("default").wakeups.queued()  # every project's view shares them
    finally:
        store.close()


def test_a_failing_callback_fails_no_committer(tmp_path: Path) -> None:
    store = _store(f"sqlite:///{tmp_path / 'k.sqlite'}")
    try:

        def boom(_: object) -> None:
            raise RuntimeError("a waiter gone wrong")

        store.wakeups.watch("run_a", boom)
        store.wakeups.moved("run_a")  # logged, not raised
    finally:
        store.close()


def _within(event: threading.Event, what: str, seconds: float = 5.0) -> None:
    assert event.wait(seconds), what


def test_across_processes_on_postgresql(pg_database: Callable[[], str]) -> None:
    """Two stores on one database stand for two processes: the API's decision wakes the
    worker's store, the worker's move wakes the API's watcher, each in milliseconds."""
    url = pg_database()
    api, worker = _store(url), _store(url)
    try:
        claimed, answered = threading.Event(), threading.Event()
        told: list[object] = []
        worker.wakeups.on_queued(claimed.set)
        api.wakeups.watch("run_x", lambda outcome: (told.append(outcome), answered.set()))
        worker.wakeups.start()
        api.wakeups.start()
        time.sleep(0.5)  # both listening
        started = time.perf_counter()
        api.wakeups.queued("run_x")
        _within(claimed, "the worker was not woken by the decision's NOTIFY")
        worker.wakeups.moved("run_x", "only in the worker's process")
        _within(answered, "the API was not woken by the worker's NOTIFY")
        assert time.perf_counter() - started < 2
        assert told == [None]  # across processes: read the run, nothing is carried
    finally:
        api.close()
        worker.close()


def test_a_stop_ends_the_listeners_wait_at_once(
    pg_database: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Closing a store does not wait out the listener's poll: the stop's own ``NOTIFY`` ends
    it (with a 30 s poll, a stop that waited for it would take 30 s)."""
    monkeypatch.setattr(wakeups, "LISTEN_SECONDS", 30.0)
    store = _store(pg_database())
    try:
        heard = threading.Event()
        store.wakeups.on_queued(heard.set)
        store.wakeups.start()
        while not heard.is_set():  # listening once its own NOTIFY comes back
            store.wakeups._send(wakeups.QUEUED, "")
            heard.wait(0.2)
        listener = store.wakeups._listener
        started = time.perf_counter()
        store.wakeups.stop()
        assert listener is not None and not listener.is_alive()
        assert time.perf_counter() - started < 10
    finally:
        store.close()


def test_sqlite_starts_no_listener(tmp_path: Path) -> None:
    """SQLite's processes share no channel: no thread, no connection held to listen."""
    store = _store(f"sqlite:///{tmp_path / 'k.sqlite'}")
    try:
        before = {t.ident for t in threading.enumerate()}
        store.wakeups.start()
        assert {t.ident for t in threading.enumerate()} == before
    finally:
        store.close()
