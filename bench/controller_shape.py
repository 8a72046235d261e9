"""The production shape, measured: webhook -> active, failover, an idle controller's cost.

Real processes on one PostgreSQL (``--pg`` or ``KNEO_TEST_DATABASE_URL``; a fresh database is
created and dropped): two ``kneo controller run`` and two API-only replicas (``kneo service
serve --no-controller --no-worker``), a bare ``file://`` Git remote, the machinery of
``tests/operations/controller_shape.py``.

* webhook -> active: commit a bundle, send a signed push webhook to a replica (alternating),
  time until the registry's active revision is that commit (``--rounds``, median and p95);
* failover: ``kill -9`` of the leader, then a commit and a webhook: time from the kill until
  the standby activated it; ``SIGTERM`` of the leader: time until the standby holds the lock
  (``--failovers`` of each; lease 3 s, poll 0.25 s unless given);
* idle: one controller on a local repository (interval 10 s) for ``--idle-seconds``: passes
  and CPU seconds of the process.

    python bench/controller_shape.py [--rounds 30] [--failovers 3] [--idle-seconds 30] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]
sys.path.insert(0, str(REPO))

from bench.scratch_db import scratch_database  # noqa: E402
from tests.operations.controller_shape import Shape, cpu_seconds, percentile  # noqa: E402


def webhooks(shape: Shape, rounds: int) -> dict[str, float]:
    apis = [shape.start_api(), shape.start_api()]
    took = []
    for n in range(rounds):
        sha = shape.commit(f"round {n}")
        sent = time.monotonic()
        assert shape.webhook(apis[n % 2]).status_code == 202
        shape.wait_active(sha, timeout=30)
        took.append(time.monotonic() - sent)
    return {
        "rounds": rounds,
        "median_s": round(statistics.median(took), 3),
        "p95_s": round(percentile(took, 0.95), 3),
        "max_s": round(max(took), 3),
    }


def _standing_by(shape: Shape, n: int) -> None:
    deadline = time.monotonic() + 60
    while not shape.passes(n) and time.monotonic() < deadline:
        time.sleep(0.05)


def failovers(shape: Shape, times: int) -> dict[str, Any]:
    api = shape.apis[0]
    crashes, stops = [], []
    for n in range(times):
        leader = shape.leader_pid()
        _standing_by(shape, len(shape.controllers) - 1)
        os.kill(leader, signal.SIGKILL)
        killed = time.monotonic()
        sha = shape.commit(f"after crash {n}")
        shape.webhook(api)
        shape.wait_active(sha, timeout=60)
        crashes.append(time.monotonic() - killed)
        shape.start_controller()
        _standing_by(shape, len(shape.controllers) - 1)
        leader = shape.leader_pid()
        os.kill(leader, signal.SIGTERM)
        stopped = time.monotonic()
        while shape.leader_pid() == leader:
            time.sleep(0.005)
        stops.append(time.monotonic() - stopped)
        shape.start_controller()
    return {
        "lease_seconds": shape.lease_seconds,
        "poll_seconds": shape.poll_seconds,
        "kill9_to_active_s": [round(x, 2) for x in crashes],
        "sigterm_to_new_leader_s": [round(x, 2) for x in stops],
    }


def idle(root: Path, url: str, seconds: float) -> dict[str, Any]:
    shape = Shape(root, url, interval=10.0, local=True)
    try:
        proc = shape.start_controller()
        shape.leader_pid()
        shape.wait_active(shape.commit("first"), timeout=30)
        time.sleep(2)
        before, cpu, started = len(shape.passes(0)), cpu_seconds(proc.pid), time.monotonic()
        time.sleep(seconds)
        elapsed = time.monotonic() - started
        used = cpu_seconds(proc.pid) - cpu
        return {
            "seconds": round(elapsed, 1),
            "interval_s": 10.0,
            "passes": len(shape.passes(0)) - before,
            "cpu_s": round(used, 2),
            "cpu_share": round(used / elapsed, 4),
        }
    finally:
        shape.stop()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pg", default=os.environ.get("KNEO_TEST_DATABASE_URL"))
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--failovers", type=int, default=3)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if not args.pg:
        sys.exit("needs PostgreSQL: --pg URL or KNEO_TEST_DATABASE_URL")
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="kneo-shape-") as tmp:
        with scratch_database(args.pg, "kneo_bench_shape") as url:
            shape = Shape(Path(tmp) / "split", url)
            try:
                shape.start_controller()
                shape.start_controller()
                shape.leader_pid()
                results["webhook_to_active"] = webhooks(shape, args.rounds)
                results["failover"] = failovers(shape, args.failovers)
            finally:
                shape.stop()
        with scratch_database(args.pg, "kneo_bench_shape") as url:
            results["idle"] = idle(Path(tmp) / "idle", url, args.idle_seconds)
    print(json.dumps(results, indent=None if args.json else 2))
    return results


if __name__ == "__main__":
    main()
