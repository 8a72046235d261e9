"""SQLite WAL housekeeping: requests leave the WAL to grow up to a ceiling; a long-running
process (service, worker) copies it back into the database file from a background thread."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from kneo.store import open_store
from kneo.store.wire.dialects import WAL_AUTOCHECKPOINT_PAGES
from kneo.worker import Worker

from .helpers import open_manager


def test_background_work_checkpoints_the_wal(tmp_path: Path) -> None:
    db = tmp_path / "wal.sqlite"
    keeper = sqlite3.connect(db)  # holds the file open: no checkpoint-on-last-close
    try:
        store = open_store(f"sqlite:///{db}")
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == (
                WAL_AUTOCHECKPOINT_PAGES
            )
        for index in range(30):
            with store.transaction() as tx:
                tx.create_run(input_text=f"run {index}", workflow_name="wal", target="workflow")
        # Below the ceiling nothing was copied back: the rows are only in the WAL.
        before = db.stat().st_size
        time.sleep(0.2)
        assert db.stat().st_size == before
        work = store.start_background_work(interval=0.05)
        assert work is not None
        try:
            deadline = time.monotonic() + 10
            while db.stat().st_size == before and time.monotonic() < deadline:
                time.sleep(0.05)
            assert db.stat().st_size > before
        finally:
            work.stop()
        store.close()
    finally:
        keeper.close()


def test_worker_runs_the_housekeeping_and_stops_it(project: Path, db_url: str) -> None:
    manager = open_manager(project, db_url)
    try:
        worker = Worker(manager, poll_seconds=0.05)
        worker.start()
        threads = worker._housekeeping
        worker.stop(timeout=5)
        assert worker._housekeeping is None
        if manager.store.backend == "sqlite":
            assert threads is not None and not threads.is_alive()
        else:
            assert threads is None  # PostgreSQL checkpoints on its own
    finally:
        manager.store.close()
