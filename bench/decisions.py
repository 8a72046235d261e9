"""A decision's answer time in each shape: how long ``POST /v1/human-tasks/{id}/resume``
takes to answer the run's outcome, and how long after the decision its run starts again.

    python bench/decisions.py [--decisions 40] [--pg URL] [--code PATH] [--idle 0.3]

Real processes, each shape on its own database, all up at once; the decisions go to one shape
after the other in turn, so each sees the same load on the machine:

* ``in the request``: ``kneo service serve`` with ``KNEO_SERV_CONTINUATIONS=request`` (the
  decision drives the run on in its request: the baseline);
* ``one box``: ``kneo service serve`` (its own worker continues the run);
* ``split``: ``kneo service serve --no-worker`` and one ``kneo worker`` process (PostgreSQL
  only: SQLite's processes share no wake-up).

Each decision is on a run paused in ``draft -> approve -> publish`` (functions, no model), made
after ``--idle`` seconds of quiet (the worker waits in its poll, as on an idle system), with
``Prefer: wait=30`` (the same synchronous answer with or without the default wait, so the
code before it can be measured alike: ``--code`` names the checkout whose ``kneo`` the
processes run). Printed per shape, p50 and p95 in ms: the answer (the client's wall time of
the ``200``), and decision to continuation start (the run's ``run_resumed`` trace event,
stamped in the decision's transaction, to the worker's ``run_claimed``; on one box, where the
decision writes the take-over itself when its worker is idle, both are in one commit and the
start shows only the decisions that went through the queue). PostgreSQL with
``--pg`` or ``KNEO_TEST_DATABASE_URL``, else SQLite; the worker polls every 0.5 s (the
default), so a worker that is not woken shows it.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]
sys.path.append(str(REPO))  # bench.scratch_db

from bench.scratch_db import scratch_database  # noqa: E402

SPEC = {
    "version": "v1",
    "workflow": {
        "type": "sequential",
        "name": "bench-decision",
        "steps": [
            {"id": "draft", "kind": "function", "ref": "examples.hitl_functions:draft"},
            {"id": "approve", "kind": "human", "ref": "reviewer"},
            {"id": "publish", "kind": "function", "ref": "examples.hitl_functions:publish"},
        ],
    },
    "components": {"humans": {"reviewer": {"prompt": "Approve?", "assignee": "reviewer"}}},
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def kneo(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "kneo.cli.main", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _when(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _restart_ms(client: Any, base: str, run_id: str) -> float | None:
    """``run_resumed`` (the decision's transaction) to ``run_claimed`` (the worker's), ms."""
    events = client.get(f"{base}/v1/runs/{run_id}/trace", params={"limit": 100}).json()["events"]
    at = {e["event_type"]: e["created_at"] for e in events}
    if "run_claimed" not in at or "run_resumed" not in at:
        return None
    return (_when(at["run_claimed"]) - _when(at["run_resumed"])).total_seconds() * 1000


def _wait_up(httpx2: Any, base: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx2.get(base + "/livez", timeout=1).status_code == 200:
                return
        except httpx2.TransportError:
            pass
        assert time.monotonic() < deadline, "the service did not start"
        time.sleep(0.1)


class Shape:
    """One shape's processes on their own database, and its measurements."""

    def __init__(self, name: str, mode: str, url: str, code: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KNEO_")}
        env.update(
            {
                "KNEO_SERV_DATABASE_URL": url,
                "KNEO_SERV_REQUEST_LOGS": "false",
                "KNEO_SERV_CONTINUATIONS": "request" if mode == "request" else "auto",
                "PYTHONPATH": f"{code}{os.pathsep}{REPO}",
            }
        )
        self.name, self.base = name, f"http://127.0.0.1:{free_port()}"
        port = self.base.rsplit(":", 1)[1]
        api_args = ["--no-worker"] if mode == "split" else []
        self.procs = [kneo(["service", "serve", "--port", port, *api_args], env)]
        if mode == "split":
            self.procs.append(kneo(["worker"], env))
        self.answers: list[float] = []
        self.restarts: list[float] = []

    def decide(self, client: Any, i: int, idle: float, keep: bool) -> None:
        """Pause a run, wait ``idle``, decide it and time the answer."""
        paused = client.post(self.base + "/v1/runs", json={"input": f"d{i}", "spec": SPEC}).json()
        assert paused["status"] == "paused", paused
        time.sleep(idle)
        t0 = time.perf_counter()
        answered = client.post(
            f"{self.base}/v1/human-tasks/{paused['continuation_id']}/resume",
            json={"request_id": paused["request_id"], "decision": "approved"},
            headers={"Prefer": "wait=30"},
        )
        took = (time.perf_counter() - t0) * 1000
        assert answered.status_code == 200, answered.text
        assert answered.json()["status"] == "succeeded", answered.text
        if keep:
            self.answers.append(took)
            restart = _restart_ms(client, self.base, paused["run_id"])
            if restart is not None:
                self.restarts.append(restart)

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.wait(timeout=30)


def pct(values: list[float], q: float) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    return f"{ordered[min(len(ordered) - 1, int(q * len(ordered)))]:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=40)
    parser.add_argument("--pg", default=os.environ.get("KNEO_TEST_DATABASE_URL"))
    parser.add_argument("--code", type=Path, default=REPO, help="the checkout to run")
    parser.add_argument("--idle", type=float, default=0.3)
    args = parser.parse_args()
    shapes = [("in the request", "request"), ("one box", "worker")]
    if args.pg:
        shapes.append(("split (API + worker)", "split"))
    import httpx2

    with ExitStack() as stack:
        rows = []
        for name, mode in shapes:
            if args.pg:
                url = stack.enter_context(scratch_database(args.pg, "kneo_decisions"))
            else:
                url = f"sqlite:///{tempfile.mkdtemp(prefix='kneo-dec-')}/k.sqlite"
            row = Shape(name, mode, url, args.code.resolve())
            stack.callback(row.stop)
            rows.append(row)
        for row in rows:
            _wait_up(httpx2, row.base)
        time.sleep(1.5)  # the workers up and idle
        with httpx2.Client(timeout=60) as client:
            for i in range(args.decisions + 3):  # interleaved: each shape sees the same load
                for row in rows:
                    row.decide(client, i, args.idle, keep=i >= 3)  # three to warm up
    base = statistics.median(rows[0].answers)
    print(
        f"backend: {'PostgreSQL' if args.pg else 'SQLite'}; code: {args.code}; "
        f"{args.decisions} decisions per shape, {args.idle:g} s idle before each"
    )
    print("| shape | answer p50 ms | answer p95 ms | p50 / in the request | "
          "decision to continuation start p50 ms | p95 ms |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r.name} | {pct(r.answers, 0.5)} | {pct(r.answers, 0.95)} "
            f"| {statistics.median(r.answers) / base:.2f}x "
            f"| {pct(r.restarts, 0.5)} | {pct(r.restarts, 0.95)} |"
        )


if __name__ == "__main__":
    main()
