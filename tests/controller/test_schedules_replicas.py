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
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from gitops_fixtures import Keys, Repo
from test_schedules import _promote

from kneo.clock import ManualClock
from kneo.store import RunQuery
from tests.cli_zygote import KNEO

REPO_ROOT = Path(__file__).resolve().parents[2]
KEY = ("nightly", "dev", "tick")
#: ticks (one a second) while two replicas run, then one, then after the restart: each
#: phase long enough for a kill to fall between two ticks
TWO, ONE, AFTER = 6, 4, 3
#: seconds with no replica running: the ticks they held are caught up after the restart
OUTAGE = 3


def _worker(tmp_path: Path, url: str, name: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KNEO")}
    env |= {"KNEO_SERV_DATABASE_URL": url, "PYTHONPATH": str(REPO_ROOT)}
    with (tmp_path / f"{name}.err").open("ab") as err:  # the child keeps its own descriptor
        return subprocess.Popen(
            [*KNEO, "worker"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=err
        )


def _running(tmp_path: Path, name: str) -> bool:
    """The worker says it runs (its schedule passes started before it says so)."""
    err = tmp_path / f"{name}.err"
    return " running with concurrency " in err.read_text(errors="replace")


def _ticks(store: Any) -> list[Any]:
    return sorted(store.schedules.ticks(KEY, limit=1000), key=lambda t: t.tick_at)


def _until(what: str, ready: Callable[[], bool], timeout: float = 120.0) -> None:
    """Wait for a state of the database (never for a guessed time)."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _started_since(store: Any, since: datetime, count: int) -> Callable[[], bool]:
    return lambda: sum(t.status == "started" and t.tick_at > since for t in _ticks(store)) >= count


def _kill_between_ticks(store: Any, proc: subprocess.Popen[bytes]) -> datetime:
    """``kill -9`` right after the latest tick was recorded (no claim in flight, mostly: a
    claim the kill interrupts is left ``claimed``, never fired twice; the test allows it)."""
    _until("a quiet moment", lambda: all(t.status != "claimed" for t in _ticks(store)[-3:]))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    return datetime.now(UTC)


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
    first, second = _worker(tmp_path, url, "first"), _worker(tmp_path, url, "second")
    third: subprocess.Popen[bytes] | None = None
    try:
        _until(
            "both replicas running", lambda: all(_running(tmp_path, n) for n in ("first", "second"))
        )
        both = datetime.now(UTC)
        _until(f"{TWO} ticks from two replicas", _started_since(store, both, TWO))
        killed = _kill_between_ticks(store, first)  # one replica dies: the other goes on
        _until(f"{ONE} ticks from the other replica", _started_since(store, killed, ONE))
        outage = _kill_between_ticks(store, second)  # both gone: an outage
        time.sleep(OUTAGE)  # the outage's length (what is then caught up), not a wait for state
        third = _worker(tmp_path, url, "third")
        restarted = datetime.now(UTC)
        _until(
            f"the outage caught up and {AFTER} new ticks", _started_since(store, restarted, AFTER)
        )
        third.send_signal(signal.SIGTERM)
        assert third.wait(60) is not None
    finally:
        for proc in (first, second, third):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(10)
    ticks = _ticks(store)
    assert len(ticks) >= TWO + ONE + OUTAGE + AFTER, len(ticks)
    # no gap: every second from the first tick to the last, the outage's included
    span = (ticks[-1].tick_at - ticks[0].tick_at).total_seconds()
    assert len(ticks) == span + 1
    assert all(b.tick_at - a.tick_at == timedelta(seconds=1) for a, b in itertools.pairwise(ticks))
    assert any(t.tick_at > outage + timedelta(seconds=OUTAGE) for t in ticks)
    # the outage's ticks: every one of its seconds, each claimed after the restart
    caught = [t for t in ticks if outage < t.tick_at < restarted]
    assert len(caught) >= OUTAGE, (outage, restarted, caught)
    assert all(t.created_at > restarted for t in caught), caught
    # each tick started (a claim a kill -9 cut short stays claimed: at most one per kill)
    cut = [t for t in ticks if t.status != "started"]
    assert len(cut) <= 2 and {t.status for t in cut} <= {"claimed"}, cut
    # exactly one run per started tick, at most one for a cut one, and none without its tick
    run_ids = [t.run_id for t in ticks if t.status == "started"]
    assert len(set(run_ids)) == len(run_ids)
    runs = store.runs.list_runs(RunQuery(limit=1000, count=False)).items
    scheduled = [r for r in runs if r.bundle_name == "nightly" and r.created_at >= begun]
    extra = [r for r in scheduled if r.run_id not in run_ids]
    cut_instants = {t.tick_at.isoformat() for t in cut}
    assert len(extra) <= len(cut)
    assert {r.metadata["schedule"]["tick"] for r in extra} <= cut_instants
    assert {r.run_id for r in scheduled} >= set(run_ids)
    for tick in ticks:
        if tick.status == "started":
            run = store.runs.get_run(tick.run_id)
            assert run.metadata["schedule"]["tick"] == tick.tick_at.isoformat()
