"""Kneo behind PgBouncer in transaction mode (``KNEO_SERV_DATABASE_POOLER=transaction``):
the schema migrates through it, 4 ``kneo worker`` processes drain queued runs with every
step executed once, a paused run resumes, and notifications are delivered once; nothing
session-level (prepared statements, ``LISTEN``) is used, so any transaction may run on any
server connection. Sizes: ``KNEO_OPS_RUNS`` (default 200)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from kneo import Decision
from kneo.store import TaskQuery
from kneo.store import tables as t

from .helpers import Procs, assert_queue_drained, env_for, open_manager, step_counts, wait_for
from .pgbouncer import pgbouncer

RUNS = int(os.environ.get("KNEO_OPS_RUNS", "200"))
POOLER = {"KNEO_SERV_DATABASE_POOLER": "transaction"}


def _succeeded(url: str) -> int:
    engine = sa.create_engine(url, connect_args={"prepare_threshold": None})
    try:
        with engine.connect() as conn:
            query = sa.select(sa.func.count()).where(t.runs.c.status == "succeeded")
            return int(conn.execute(query.select_from(t.runs)).scalar_one())
    finally:
        engine.dispose()


def test_workers_and_a_service_through_pgbouncer_in_transaction_mode(
    project: Path, procs: Procs, pg_database: Callable[[], str]
) -> None:
    direct = pg_database()
    # 10 server connections for 4 workers (3 each) and this process's 15
    with pgbouncer(direct, pool_size=10) as url:
        manager = open_manager(project, url, **POOLER)  # migrates through PgBouncer
        try:
            store = manager.store
            assert store.schema_revision() is not None
            keys = {
                manager.start_run_from_spec(
                    input_text=f"k{i:05d}", spec_path=project / "three.yaml"
                ).run_id: f"k{i:05d}"
                for i in range(RUNS)
            }
            env = env_for(project, url, KNEO_SERV_WORKER_POLL_SECONDS="0.05", **POOLER)
            for _ in range(4):
                procs.worker(project, env)
            wait_for(
                lambda: _succeeded(url) == RUNS,
                timeout=60 + RUNS * 0.5,
                what=f"{RUNS} runs to succeed through pgbouncer",
            )
            counts = step_counts(project)
            assert len(counts) == RUNS * 3 and set(counts.values()) == {1}
            assert {key for key, _ in counts} == set(keys.values())
            assert_queue_drained(store, RUNS)

            # the same statements many times over (psycopg would prepare them after 5)
            paused = [
                manager.run_from_spec(input_text=f"h{i}", spec_path=project / "human.yaml")
                for i in range(8)
            ]
            assert {run.status for run in paused} == {"paused"}
            for run in paused:
                [task] = store.tasks.list_continuations(
                    TaskQuery(run_id=run.run_id, count=False)
                ).items
                request = task.requests[0]["request_id"]
                done = manager.resume(
                    task.continuation_id, Decision(request, "approved"), actor="bo"
                )
                assert done.status == "succeeded", done

            # the controller's wake-ups: a poll here (LISTEN needs a session of its own)
            woken = threading.Event()
            wakeups = store.controller.controller_wakeups(
                lambda *_: woken.set(), name="main", poll_seconds=0.1
            )
            try:
                time.sleep(0.3)
                woken.clear()
                store.controller.queue_controller_request(
                    "main", "webhook", actor="test", detail={}
                )
                assert woken.wait(5), "the controller was not woken through pgbouncer"
            finally:
                wakeups.stop()
        finally:
            manager.store.close()
        for proc in procs.items:
            assert proc.poll() is None, "a worker died behind pgbouncer"
        logs = "".join(p.read_text() for p in project.glob("worker-*.log"))
        assert "prepared statement" not in logs and "Traceback" not in logs
