"""Queue drain rate: queued runs (a 3-step function workflow) executed per second by 1, 2 and 4
``kneo worker`` processes on PostgreSQL and by 1 on SQLite. Reports runs/s, the scaling over
one worker, the machine's CPU utilization during the drain (when it nears 100 %, the cores,
not the queue, are the limit; other processes on the machine count too, hence the load
average) and the workers' own CPU time per run.

Method, per configuration: a fresh database; ``--runs`` runs queued with their records held
back (``available_at`` a few seconds ahead) while the worker processes start and connect;
the clock starts when the records become due and stops at the last run's ``finished_at``.

    python bench/queue_drain.py                       # PostgreSQL from KNEO_TEST_DATABASE_URL
    python bench/queue_drain.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test
    python bench/queue_drain.py --runs 1000 --workers 1 2 4 --json
    python bench/queue_drain.py --in-process --runs 300   # PlatformManager.start_worker

``--in-process`` drains with the library's worker instead (``PlatformManager.start_worker``,
one thread in the bench process, the same queue loop as ``kneo worker``); its CPU per run is
the bench process's, polling included. It uses only the public API, so it measures another
checkout too: ``PYTHONPATH=/other/checkout python bench/queue_drain.py --in-process``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.append(str(REPO))  # bench.scratch_db (appended: the kneo measured stays the same)

from bench.scratch_db import scratch_database  # noqa: E402

TARGET_SCALING = 2.5
HOLD_SECONDS = 6.0

STEPS = """
def a(text):
    return text + " a"

def b(text):
    return text + " b"

def c(text):
    return text + " c"
"""

SPEC = {
    "version": "v1",
    "workflow": {
        "type": "sequential",
        "name": "bench-queue",
        "steps": [{"id": s, "kind": "function", "ref": f"benchsteps:{s}"} for s in ("a", "b", "c")],
    },
}


def _cpu_times() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine from /proc/stat."""
    with open("/proc/stat", encoding="ascii") as fh:
        values = [float(v) for v in fh.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0.0)
    return sum(values) - idle, sum(values)


def _process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (float(fields[11]) + float(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(
    project: Path, url: str, runs: int, workers: int, in_process: bool = False
) -> dict[str, Any]:
    """Queue ``runs`` runs, hold them, start ``workers`` processes (``in_process``: the
    library's worker thread instead), time the drain."""
    import sqlalchemy as sa

    from kneo.platform import create_platform
    from kneo.settings import Settings
    from kneo.spec.project import ProjectContext
    from kneo.store import tables as t

    settings = Settings.from_env({"KNEO_SERV_DATABASE_URL": url})
    manager = create_platform(
        settings=settings, project=ProjectContext.discover(cwd=project, settings=settings)
    )
    store = manager.store
    for i in range(runs):
        manager.start_run_from_spec(input_text=f"r{i}", spec_path=project / "bench.yaml")
    due = datetime.now(UTC) + timedelta(seconds=HOLD_SECONDS + 1.5 * workers)
    with store.engine.begin() as conn:
        conn.execute(sa.update(t.queue).values(available_at=due))
    env = {k: v for k, v in os.environ.items() if not k.startswith("KNEO")}
    env.update(
        PYTHONPATH=os.pathsep.join([str(project), str(REPO)]),
        KNEO_SERV_DATABASE_URL=url,
        KNEO_SERV_WORKER_POLL_SECONDS="0.02",
        KNEO_SERV_WORKER_LEASE_SECONDS="60",
        KNEO_SERV_LOG_LEVEL="WARNING",
    )
    library = None
    if in_process:
        settings = Settings.from_env(
            {"KNEO_SERV_DATABASE_URL": url, "KNEO_SERV_WORKER_LEASE_SECONDS": "60"}
        )
        library = create_platform(
            settings=settings, project=ProjectContext.discover(cwd=project, settings=settings)
        )
        library.start_worker(poll_seconds=0.02)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "kneo.cli.main", "worker"],
            cwd=project,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(0 if in_process else workers)
    ]
    try:
        time.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()))
        busy0, total0 = _cpu_times()
        own = time.process_time if in_process else lambda: 0.0  # the library's thread
        cpu0 = sum(_process_cpu_seconds(p.pid) for p in procs) + own()
        started = time.monotonic()
        r = t.runs.c
        while True:
            with store.engine.connect() as conn:
                left = conn.execute(
                    sa.select(sa.func.count()).select_from(t.runs).where(r.status != "succeeded")
                ).scalar_one()
            if left == 0:
                break
            if time.monotonic() - started > 600:
                raise RuntimeError(f"{left} runs still not succeeded after 600 s")
            time.sleep(0.05)
        busy1, total1 = _cpu_times()
        for p in procs:
            for task in sorted(os.listdir(f"/proc/{p.pid}/task")):
                with open(f"/proc/{p.pid}/task/{task}/stat") as fh:
                    txt = fh.read()
                name = txt[txt.index("(")+1:txt.rindex(")")]
                f = txt.rsplit(")", 1)[1].split()
                print("THREAD", name, int(f[11]) + int(f[12]), file=sys.stderr)
        worker_cpu = sum(_process_cpu_seconds(p.pid) for p in procs) + own() - cpu0
        with store.engine.connect() as conn:
            last = conn.execute(sa.select(sa.func.max(r.finished_at))).scalar_one()
        if last.tzinfo is None:
            last = last.replace(tzinfo=UTC)
        seconds = (last - due).total_seconds()
    finally:
        if library is not None:
            library.stop_worker()
            library.store.close()
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
        store.close()
    return {
        "workers": "in-process" if in_process else workers,
        "runs": runs,
        "seconds": round(seconds, 3),
        "runs_per_second": round(runs / seconds, 1),
        "cpu_utilization": round((busy1 - busy0) / max(1.0, total1 - total0), 3),
        "worker_cpu_ms_per_run": round(1000 * worker_cpu / runs, 1),
        "load_average": round(os.getloadavg()[0], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get("KNEO_TEST_DATABASE_URL"),
        help="PostgreSQL server to create bench databases on",
    )
    parser.add_argument("--runs", type=int, default=400)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="drain with PlatformManager.start_worker (one thread) instead of processes",
    )
    args = parser.parse_args()
    if args.in_process:
        args.workers = [1]

    results: dict[str, list[dict[str, Any]]] = {"postgresql": [], "sqlite": []}
    with tempfile.TemporaryDirectory(prefix="kneo-bench-queue-") as tmp:
        project = Path(tmp)
        (project / ".kneo").mkdir()
        (project / "benchsteps.py").write_text(STEPS)
        (project / "bench.yaml").write_text(json.dumps(SPEC))
        sys.path.insert(0, str(project))
        if args.database_url:
            # Warm-up, discarded: the first drain of a process tree pays one-off costs
            # (bytecode, connection set-up, page cache) that would flatter the scaling.
            with scratch_database(args.database_url, "kneo_bench") as url:
                measure(project, url, min(args.runs, 100), 1, args.in_process)
            for workers in args.workers:
                with scratch_database(args.database_url, "kneo_bench") as url:
                    results["postgresql"].append(
                        measure(project, url, args.runs, workers, args.in_process)
                    )
        if not args.no_sqlite:
            url = f"sqlite:///{project / '.kneo' / 'bench.sqlite'}"
            results["sqlite"].append(measure(project, url, args.runs, 1, args.in_process))

    pg = {r["workers"]: r["runs_per_second"] for r in results["postgresql"]}
    scaling = (
        {str(w): round(rate / pg[1], 2) for w, rate in pg.items()}
        if 1 in pg and len(pg) > 1
        else {}
    )
    report = {
        "cores": os.cpu_count(),
        "results": results,
        "scaling_vs_1_worker": scaling,
        "target_4_workers": TARGET_SCALING,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"queue drain, 3-step function workflow, {args.runs} runs, {os.cpu_count()} cores")
    for backend, rows in results.items():
        for row in rows:
            print(
                f"  {backend:<10} {row['workers']} worker(s): {row['runs_per_second']:>7} runs/s"
                f"  ({row['seconds']} s, machine CPU {row['cpu_utilization']:.0%}, "
                f"worker CPU {row['worker_cpu_ms_per_run']} ms/run, "
                f"load {row['load_average']})"
            )
    if scaling:
        print(
            "  scaling vs 1 PostgreSQL worker: "
            + ", ".join(f"{w}: {s}x" for w, s in scaling.items())
            + f" (target 4 workers >= {TARGET_SCALING}x)"
        )


if __name__ == "__main__":
    main()
