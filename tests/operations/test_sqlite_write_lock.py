"""SQLite writers of one process queue on one lock per database file (instead of sleeping in
SQLite's busy handler); every write path takes it; a lock not obtained in time is given up.
The hot write paths (raw transactions, step commits) share one writer connection, whose page
cache stays valid, replaced when it fails."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kneo.errors import NotReady
from kneo.store import AuditQuery, Store, open_store
from kneo.store.runs import steps
from kneo.store.wire.dialects import SqliteDialect


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
    _waits_for_lock(store, lambda: store.locks.acquire_lock("n", "owner", 30))  # bare write

    def raw() -> None:
        with store.transaction() as tx:
            tx.add_audit("test.event", payload={})

    _waits_for_lock(store, raw)  # a transaction (every other write)

    # A second store on the same file shares the lock.
    other = open_store(f"sqlite:///{tmp_path / 'locks.sqlite'}")
    try:
        _waits_for_lock(store, lambda: other.locks.release_lock("n", "owner"))
    finally:
        other.close()


def test_lock_not_obtained_in_time_is_given_up(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'slow.sqlite'}")
    try:
        # The store's own dialect (it holds the store's statements and writer connection)
        dialect = store.dialect
        assert isinstance(dialect, SqliteDialect)
        dialect.busy_timeout_ms = 200
        with dialect.write_lock(store.engine):
            started = time.monotonic()
            with store.transaction() as tx:
                tx.create_run(input_text="x", workflow_name="w", target="workflow")
            assert 0.15 < time.monotonic() - started < 5
        assert store.runs.list_runs().total == 1
    finally:
        store.close()


def _seen_connections(store: Store, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Ids of the DBAPI connections the raw write paths are handed."""
    seen: list[int] = []
    lend = store.dialect.write_connection

    @contextlib.contextmanager
    def spy(engine: Any, held: Any = None) -> Iterator[Any]:
        with lend(engine, held) as raw:
            seen.append(id(raw))
            yield raw

    monkeypatch.setattr(store.dialect, "write_connection", spy)
    return seen


def test_hot_writes_share_one_warm_connection(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _seen_connections(store, monkeypatch)
    for index in range(3):
        with store.transaction() as tx:
            tx.add_audit("test.event", payload={"n": index})
    with store.transaction() as tx:
        run = tx.create_run(input_text="x", workflow_name="w", target="workflow")
    with store.transaction() as tx:
        run = tx.update_run(run.run_id, status="running")
    row = steps.StepCheckpoint("step_completed", "s", "completed", "json", b"{}", 2, False, {})
    with store.transaction() as tx:
        written = tx.write_step(
            run.run_id, expected_version=run.version, state_text="{}", checkpoints=[row], events=[]
        )
    assert written.version == run.version + 1
    # six transactions: three audits, create_run, update_run, the step commit
    assert len(seen) == 6 and len(set(seen)) == 1
    store.close()
    assert store.dialect.writer._writer is None  # closed with the store


def test_a_writer_that_failed_is_replaced(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _seen_connections(store, monkeypatch)
    with store.transaction() as tx:
        tx.add_audit("test.event", payload={})
    broken = store.dialect.writer._writer

    def failing_cursor() -> Any:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(broken, "cursor", failing_cursor)
    with pytest.raises(NotReady), store.transaction() as tx:
        tx.add_audit("test.event", payload={})
    with store.transaction() as tx:
        tx.add_audit("test.event", payload={})
    assert store.dialect.writer._writer is not broken
    assert len(store.audit.list_audit(AuditQuery(event_type="test.event")).items) == 2
    assert seen[0] == seen[1] != seen[2]
