"""SQLite writers of one process queue on one lock per database file (instead of sleeping in
SQLite's busy handler); every write path takes it; a lock not obtained in time is given up."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kneo.store import Store, open_store
from kneo.store.dialects import SqliteDialect


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'locks.sqlite'}")
    yield opened
    opened.close()


def _waits_for_lock(store: Store, write: Callable[[], object]) -> None:
    """``write`` does not finish while the test holds the process's write lock, then does."""
    done = threading.Event()

    def writer() -> None:
        write()
        done.set()

    with store.dialect.write_lock(store.engine):
        thread = threading.Thread(target=writer)
        thread.start()
        assert not done.wait(0.3)  # queued on the lock, not on SQLite
    assert done.wait(10)
    thread.join()


def test_every_write_path_queues_on_the_lock(store: Store, tmp_path: Path) -> None:
    run = store.create_run(input_text="x", workflow_name="w", target="workflow")
    _waits_for_lock(store, lambda: store.update_run(run.run_id, status="running"))  # Store
    _waits_for_lock(store, lambda: store.acquire_lock("n", "owner", 30))  # bare write

    def raw() -> None:
        with store.raw_transaction() as tx:
            tx.add_audit("test.event", payload={})

    _waits_for_lock(store, raw)

    # A second store on the same file shares the lock.
    other = open_store(f"sqlite:///{tmp_path / 'locks.sqlite'}")
    try:
        _waits_for_lock(store, lambda: other.release_lock("n", "owner"))
    finally:
        other.close()


def test_lock_not_obtained_in_time_is_given_up(tmp_path: Path) -> None:
    dialect = SqliteDialect(busy_timeout_ms=200)
    store = open_store(f"sqlite:///{tmp_path / 'slow.sqlite'}")
    try:
        store.dialect = dialect
        with dialect.write_lock(store.engine):
            started = time.monotonic()
            store.create_run(input_text="x", workflow_name="w", target="workflow")
            assert 0.15 < time.monotonic() - started < 5
        assert store.list_runs().total == 1
    finally:
        store.close()
