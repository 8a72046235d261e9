"""Fifty workers on one PostgreSQL: ``--workers`` ``kneo worker`` processes and ``--apis``
API-only replicas (``kneo service serve --no-worker --no-controller``), every one of them
connected through one PgBouncer in transaction mode (``KNEO_SERV_DATABASE_POOLER=transaction``,
Debian's ``pgbouncer``, ``--server-pool`` server connections), drain ``--runs`` runs of a
3-step function workflow submitted over HTTP (``POST /v1/runs``, ``async_mode``, the replicas
alternating).

Reports: submission rate, drain time and rate (first submission to the last run's
``finished_at``), the peak of PostgreSQL server connections during the drain
(``pg_stat_activity``), the client connections the processes would have opened without a
pooler (their pool sizes), and the checks: every run succeeded, every step of every run
executed exactly once (each step appends ``<key> <step> <pid>`` to a file), no process died,
no traceback in any log.

    python bench/fleet.py [--workers 50] [--apis 2] [--runs 5000] [--server-pool 20] [--json]

PostgreSQL from ``--pg`` or ``KNEO_TEST_DATABASE_URL``; a fresh database is created and
dropped afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "service"))

import httpx2  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from svc_helpers import LiveServer  # noqa: E402

from bench.scratch_db import scratch_database  # noqa: E402
from tests.operations.helpers import Procs, env_for, make_project, open_manager, step_counts  # noqa: E402
from tests.operations.pgbouncer import pgbouncer  # noqa: E402

OPERATOR = "fleet-operator-key-0123456789abcdef"
POOLER = {"KNEO_SERV_DATABASE_POOLER": "transaction"}


class ServerConnections:
    """Samples the database's PostgreSQL backends (client backends only) every 0.2 s."""

    def __init__(self, direct: str) -> None:
        self.engine = sa.create_engine(direct, pool_size=1)
        self.name = sa.make_url(direct).database
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        query = sa.text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = :db "
            "AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
        )
        while not self._stop.wait(0.2):
            with self.engine.connect() as conn:
                self.peak = max(self.peak, int(conn.execute(query, {"db": self.name}).scalar_one()))

    def __enter__(self) -> ServerConnections:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.engine.dispose()


@contextmanager
def stopping(servers: list[LiveServer], procs: Procs) -> Iterator[None]:
    """Stops the replicas and workers (before the pooler they talk through goes)."""
    try:
        yield
    finally:
        for server in servers:
            server.stop()
        procs.stop_all()


def _succeeded(engine: sa.Engine) -> int:
    from kneo.store import tables as t

    with engine.connect() as conn:
        query = sa.select(sa.func.count()).where(t.runs.c.status == "succeeded")
        return int(conn.execute(query.select_from(t.runs)).scalar_one())


def measure(base: str, workers: int, apis: int, runs: int, server_pool: int) -> dict[str, Any]:
    from kneo.store import tables as t

    procs = Procs()
    servers: list[LiveServer] = []
    with tempfile.TemporaryDirectory(prefix="kneo-bench-fleet-") as tmp:
        project = make_project(Path(tmp) / "project")
        with (
            scratch_database(base, "kneo_bench_fleet") as direct,
            pgbouncer(direct, pool_size=server_pool) as url,
            stopping(servers, procs),
        ):
            open_manager(project, url, **POOLER).store.close()  # migrates, through it
            env = env_for(
                project,
                url,
                KNEO_SERV_WORKER_POLL_SECONDS="0.2",
                KNEO_SERV_LOG_LEVEL="WARNING",
                KNEO_SERV_AUTH_ENABLED="true",
                KNEO_SERV_API_KEYS=f"operator:{OPERATOR}:operator",
                **POOLER,
            )
            started = time.monotonic()
            for _ in range(workers):
                procs.worker(project, env)
            api_env = dict(env)
            api_env.pop("PYTHONPATH")
            for n in range(apis):
                servers.append(
                    LiveServer(
                        api_env,
                        project,
                        project / f"api-{n}.log",
                        ("--no-worker", "--no-controller"),
                    ).start(timeout=300)
                )
            fleet_up = time.monotonic() - started
            direct_engine = sa.create_engine(direct)
            refused: Counter[int] = Counter()

            def submit(i: int) -> None:
                server = servers[i % len(servers)]
                response = httpx2.post(
                    f"{server.url}/v1/runs",
                    json={"input": f"k{i:06d}", "spec_path": "three.yaml", "async_mode": True},
                    headers={"Authorization": f"Bearer {OPERATOR}"},
                    timeout=60,
                )
                if response.status_code != 202:
                    refused[response.status_code] += 1

            with ServerConnections(direct) as connections:
                first = time.time()
                with ThreadPoolExecutor(16) as pool:
                    list(pool.map(submit, range(runs)))
                submitted = time.time() - first
                deadline = time.monotonic() + 1800
                while _succeeded(direct_engine) < runs - sum(refused.values()):
                    if time.monotonic() > deadline:
                        raise RuntimeError("the fleet did not drain within 30 minutes")
                    if any(p.poll() is not None for p in procs.items):
                        raise RuntimeError("a worker died")
                    time.sleep(0.5)
            with direct_engine.connect() as conn:
                last = conn.execute(sa.select(sa.func.max(t.runs.c.finished_at))).scalar_one()
                statuses = dict(
                    conn.execute(
                        sa.select(t.runs.c.status, sa.func.count()).group_by(t.runs.c.status)
                    ).all()
                )
            direct_engine.dispose()
            if last.tzinfo is None:
                last = last.replace(tzinfo=UTC)
            drained = last.timestamp() - first
            counts = step_counts(project)
            alive = all(p.poll() is None for p in procs.items)
        logs = "".join(p.read_text(errors="replace") for p in project.glob("*.log"))
    once = len(counts) == 3 * runs and set(counts.values()) == {1}
    return {
        "workers": workers,
        "apis": apis,
        "runs": runs,
        "server_pool": server_pool,
        "fleet_start_seconds": round(fleet_up, 1),
        "submitted_per_second": round(runs / submitted, 1),
        "refused": dict(refused),
        "drain_seconds": round(drained, 1),
        "runs_per_second": round(runs / drained, 1),
        "statuses": statuses,
        "every_step_once": once,
        "steps_executed": sum(counts.values()),
        "peak_server_connections": connections.peak,
        "client_pools_without_pooler": workers * 3 + apis * 10,
        "processes_alive": alive,
        "tracebacks_in_logs": logs.count("Traceback"),
        "first_traceback": logs[logs.find("Traceback") :][:12000] if "Traceback" in logs else "",
        "load_average": round(os.getloadavg()[0], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", default=os.environ.get("KNEO_TEST_DATABASE_URL"))
    parser.add_argument("--workers", type=int, default=50)
    parser.add_argument("--apis", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5000)
    parser.add_argument("--server-pool", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not args.pg:
        parser.error("a PostgreSQL server: --pg or KNEO_TEST_DATABASE_URL")
    result = measure(args.pg, args.workers, args.apis, args.runs, args.server_pool)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for key, value in result.items():
        print(f"  {key:<30} {value}")


if __name__ == "__main__":
    main()
