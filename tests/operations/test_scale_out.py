"""Scale-out on one PostgreSQL: 4 ``kneo worker`` processes drain N queued runs, every run
executes exactly once and none is lost; ``kill -9`` of a worker mid-run is survived without
re-running a completed step. Sizes: ``KNEO_OPS_RUNS`` (default 200, full 1000) and
``KNEO_OPS_KILLS`` (default 3, full 20)."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from kneo.store import tables as t
from tests.queue_records import queue_records

from .helpers import (
    Procs,
    assert_queue_drained,
    counter_lines,
    env_for,
    open_manager,
    step_counts,
    wait_for,
)

RUNS = int(os.environ.get("KNEO_OPS_RUNS", "200"))
KILLS = int(os.environ.get("KNEO_OPS_KILLS", "3"))


def _status_counts(url: str) -> Counter[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(t.runs.c.status, sa.func.count()).group_by(t.runs.c.status)
            ).all()
    finally:
        engine.dispose()
    return Counter({status: int(count) for status, count in rows})


def test_four_workers_drain_queue_exactly_once(
    project: Path, procs: Procs, pg_database: Callable[[], str]
) -> None:
    """Every queued run executes each step exactly once, across 4 processes; none is lost."""
    url = pg_database()
    manager = open_manager(project, url)
    try:
        keys = {
            manager.start_run_from_spec(
                input_text=f"k{i:05d}", spec_path=project / "three.yaml"
            ).run_id: f"k{i:05d}"
            for i in range(RUNS)
        }
        store = manager.store
        env = env_for(
            project, url, KNEO_SERV_WORKER_POLL_SECONDS="0.05", KNEO_SERV_WORKER_LEASE_SECONDS="30"
        )
        for _ in range(4):
            procs.worker(project, env)
        wait_for(
            lambda: _status_counts(url)["succeeded"] == RUNS,
            timeout=60 + RUNS * 0.5,
            what=f"{RUNS} runs to succeed",
        )
        counts = step_counts(project)
        assert len(counts) == RUNS * 3
        assert set(counts.values()) == {1}, [k for k, v in counts.items() if v != 1][:10]
        assert {key for key, _ in counts} == set(keys.values())
        for run_id, key in list(keys.items())[:20]:
            run = store.runs.get_run(run_id)
            assert run.status == "succeeded" and run.output_text == f"{key} 1 2 3"
        assert_queue_drained(store, RUNS)
        pids = {pid for _key, _step, pid in counter_lines(project)}
        assert len(pids) >= 2, "the queue was not shared between worker processes"
    finally:
        manager.store.close()


def test_kill_9_mid_run_then_another_worker_finishes(
    project: Path, procs: Procs, pg_database: Callable[[], str]
) -> None:
    """A worker killed inside step 3 of 5: after lease expiry another worker continues; steps
    1-2 (committed) never run again, step 3 runs again (it never completed), 4-5 once."""
    url = pg_database()
    env = env_for(
        project, url, KNEO_SERV_WORKER_LEASE_SECONDS="1.5", KNEO_SERV_WORKER_POLL_SECONDS="0.05"
    )
    manager = open_manager(project, url)
    workers = [procs.worker(project, env) for _ in range(2)]
    try:
        for rep in range(KILLS):
            key = f"kill{rep:03d}"
            run_id = manager.start_run_from_spec(
                input_text=f"{key} block", spec_path=project / "five.yaml"
            ).run_id
            marker = project / "markers" / key
            wait_for(marker.exists, timeout=60, what="step 3 to start")
            victim_pid = int(wait_for(lambda m=marker: m.read_text(), 5, "marker pid"))
            victim = next(w for w in workers if w.pid == victim_pid)
            os.kill(victim_pid, signal.SIGKILL)
            victim.wait(timeout=10)
            workers.remove(victim)
            workers.append(procs.worker(project, env))  # keep two alive
            killed_at = time.monotonic()
            wait_for(
                lambda r=run_id: manager.store.runs.get_run(r).status == "succeeded",
                timeout=60,
                what=f"run {run_id} to be finished by another worker",
            )
            assert time.monotonic() - killed_at >= 1.0  # it waited for the lease to lapse
            run = manager.store.runs.get_run(run_id)
            assert run.output_text == f"{key} block 1 2 3 4 5"
            counts = step_counts(project)
            assert [counts[(key, s)] for s in ("s1", "s2", "s3", "s4", "s5")] == [1, 1, 2, 1, 1]
            finishers = {
                pid for k, step, pid in counter_lines(project) if k == key and step == "s5"
            }
            assert finishers and str(victim_pid) not in finishers
            # the record is settled just after the run's final write
            records = wait_for(
                lambda r=run_id: [
                    rec for rec in queue_records(manager.store, r) if rec.status != "leased"
                ],
                timeout=10,
                what="the queue record to settle",
            )
            assert [(r.status, r.attempts) for r in records] == [("completed", 2)]
            events = [e.event_type for e in manager.store.runs.list_trace(run_id, limit=500).items]
            assert "run_continued" in events and events[-1] == "run_completed"
    finally:
        manager.store.close()
