"""A schedule ticking every second across two real worker processes, a kill -9 of one, then
of the other, an outage and a restart: each tick starts exactly one run, and the ticks
missed in the outage are caught up as the schedule's policy says (``catch_up: all``).

SQLite and PostgreSQL (the ``store`` fixture); the bundle is promoted by the real
controller from a real Git repository, the workers are ``kneo worker`` processes.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from gitops_fixtures import Keys, Repo
from test_schedules import _promote

from kneo.clock import ManualClock

REPO_ROOT = Path(__file__).resolve().parents[2]
KEY = ("nightly", "dev", "tick")


def _worker(tmp_path: Path, url: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KNEO")}
    env |= {"KNEO_SERV_DATABASE_URL": url, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "kneo.cli.main", "worker"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.slow
def test_each_second_ticks_once_across_replicas_kills_and_an_outage(
    store: Any, repo: Repo, keys: Keys, clock: ManualClock, tmp_path: Path
) -> None:
    _promote(store, repo, keys, clock, tmp_path, every_seconds=1, overlap="allow",
             catch_up="all", catch_up_limit=100)  # fmt: skip
    (tmp_path / ".kneo").mkdir(exist_ok=True)
    (tmp_path / ".kneo" / "config.yaml").write_text("version: v1\nenvironments: {dev: {}}\n")
    url = store.engine.url.render_as_string(hide_password=False)
    begun = datetime.now(UTC)  # (a PostgreSQL database keeps earlier tests' runs)
    first, second = _worker(tmp_path, url), _worker(tmp_path, url)
    try:
        time.sleep(20)
        os.kill(first.pid, signal.SIGKILL)  # one replica dies: the other goes on
        time.sleep(10)
        os.kill(second.pid, signal.SIGKILL)  # both gone: an outage of about 8 s
        time.sleep(8)
        third = _worker(tmp_path, url)
        time.sleep(15)
        third.send_signal(signal.SIGTERM)
        third.wait(30)
    finally:
        for proc in (first, second):
            proc.kill()
            proc.wait(10)
    ticks = sorted(store.schedules.ticks(KEY, limit=1000), key=lambda t: t.tick_at)
    assert len(ticks) >= 40, len(ticks)
    # no gap: every second from the first tick to the last, the outage's included
    span = (ticks[-1].tick_at - ticks[0].tick_at).total_seconds()
    assert len(ticks) == span + 1
    assert all(b.tick_at - a.tick_at == timedelta(seconds=1) for a, b in itertools.pairwise(ticks))
    assert {t.status for t in ticks} == {"started"}, [(t.status, t.detail) for t in ticks]
    # exactly one run per tick, and no run without its tick
    run_ids = [t.run_id for t in ticks]
    assert len(set(run_ids)) == len(ticks)
    runs = store.runs.list_runs(limit=1000, count=False).items
    scheduled = [r for r in runs if r.bundle_name == "nightly" and r.created_at >= begun]
    extra = [(r.run_id, r.metadata.get("schedule")) for r in scheduled if r.run_id not in run_ids]
    assert sorted(r.run_id for r in scheduled) == sorted(run_ids), extra
    for tick in ticks:
        run = store.runs.get_run(tick.run_id)
        assert run.metadata["schedule"]["tick"] == tick.tick_at.isoformat()
