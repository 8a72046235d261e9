"""API CPU per accepted async run: the service with its embedded worker against the
API-only shape (``kneo service serve --no-worker``) with 2 ``kneo worker`` processes.

    python bench/worker_shape.py [--runs 400] [--pg URL]

Real processes on one database (PostgreSQL with ``--pg`` or ``KNEO_TEST_DATABASE_URL``,
else SQLite). Async runs of a one-step dummy agent are posted as fast as one client can;
the API's CPU (``/proc/<pid>/stat`` user + system) is read from the first post until every
run succeeded, and divided by the runs accepted. Also printed: who drained the queue (runs
per second from the first post to the last success).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]
sys.path.append(str(REPO))  # bench.scratch_db

from bench.scratch_db import scratch_database  # noqa: E402

SPEC = {"version": "v1", "agent": {"name": "a", "model": {"provider": "dummy", "name": "d"}}}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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


def shape(name: str, api_args: list[str], workers: int, url: str, runs: int) -> dict[str, float]:
    import httpx2

    env = {k: v for k, v in os.environ.items() if not k.startswith("KNEO_")}
    env.update(
        {
            "KNEO_SERV_DATABASE_URL": url,
            "KNEO_SERV_REQUEST_LOGS": "false",
            "KNEO_SERV_WORKER_POLL_SECONDS": "0.1",
            "PYTHONPATH": str(REPO),
        }
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    api = kneo(["service", "serve", "--port", str(port), *api_args], env)
    procs = [api] + [kneo(["worker"], env) for _ in range(workers)]
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx2.get(base + "/livez", timeout=1).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            assert time.monotonic() < deadline, "the service did not start"
            time.sleep(0.1)
        time.sleep(1.0)  # workers up
        with httpx2.Client(base_url=base) as client:
            cpu0, t0 = cpu_seconds(api.pid), time.perf_counter()
            ids = []
            for i in range(runs):
                r = client.post(
                    "/v1/runs", json={"input": f"{i}", "spec": SPEC, "async_mode": True}
                )
                assert r.status_code == 202, r.text
                ids.append(r.json()["run_id"])
            accepted = time.perf_counter() - t0
            pending = set(ids)
            while pending:
                page = client.get("/v1/runs", params={"status": "succeeded", "limit": 1000})
                for run in page.json()["runs"]:
                    pending.discard(run["run_id"])
                cursor = page.json()["next_cursor"]
                while pending and cursor:
                    page = client.get(
                        "/v1/runs", params={"cursor": cursor, "status": "succeeded", "limit": 1000}
                    )
                    for run in page.json()["runs"]:
                        pending.discard(run["run_id"])
                    cursor = page.json()["next_cursor"]
                assert time.perf_counter() - t0 < 600, f"{len(pending)} runs never finished"
                time.sleep(0.05)
            drained = time.perf_counter() - t0
            api_cpu = cpu_seconds(api.pid) - cpu0
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
    return {
        "api_cpu_ms_per_run": api_cpu / runs * 1000,
        "accept_runs_per_s": runs / accepted,
        "drain_runs_per_s": runs / drained,
        "name": name,  # type: ignore[dict-item]
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=400)
    parser.add_argument("--pg", default=os.environ.get("KNEO_TEST_DATABASE_URL"))
    args = parser.parse_args()
    rows = []
    for name, api_args, workers in (
        ("embedded worker", [], 0),
        ("API only + 2 workers", ["--no-worker"], 2),
        ("embedded worker", [], 0),
        ("API only + 2 workers", ["--no-worker"], 2),
    ):
        database: AbstractContextManager[str]
        if args.pg:
            database = scratch_database(args.pg, "kneo_shape")
        else:
            database = nullcontext(
                f"sqlite:///{tempfile.mkdtemp(prefix='kneo-shape-')}/kneo.sqlite"
            )
        with database as url:
            rows.append(shape(name, api_args, workers, url, args.runs))
    print(f"backend: {'PostgreSQL' if args.pg else 'SQLite'}, {args.runs} async runs each")
    print("| shape | API CPU ms / accepted run | accepted runs/s | drained runs/s |")
    print("|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['name']} | {r['api_cpu_ms_per_run']:.2f} | {r['accept_runs_per_s']:.0f} "
            f"| {r['drain_runs_per_s']:.0f} |"
        )


if __name__ == "__main__":
    main()
