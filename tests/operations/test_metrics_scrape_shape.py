"""The documented scrape shape, end to end: an API process (``kneo service serve
--no-worker``) and two ``kneo worker`` processes, each with its own metrics port, scraped by a
real Prometheus (Debian's ``prometheus``; skipped without it, failed with CI set).

They share one ``PROMETHEUS_MULTIPROC_DIR``, as the docs once advised beside "a scrape target
per process": that made every target report the sum of all, and ``sum()`` in Prometheus
counted each run three times. Each process now reports only itself, so Prometheus's sum over
the targets is the number of runs, and the build info is one series per process.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.cli_zygote import KNEO
from tests.deploy.prometheus_server import running

from .helpers import Procs, env_for, open_manager, wait_for
from .test_metrics import _get, free_port

RUNS = 3


def test_prometheus_sums_each_run_once_across_every_process(
    project: Path, procs: Procs, tmp_path: Path
) -> None:
    db_url = f"sqlite:///{project / '.kneo' / 'kneo_runs.sqlite'}"
    shared = tmp_path / "multiproc"
    shared.mkdir()
    env = env_for(
        project,
        db_url,
        PROMETHEUS_MULTIPROC_DIR=str(shared),
        KNEO_SERV_WORKER_POLL_SECONDS="0.05",
        KNEO_SERV_METRICS_HOST="127.0.0.1",
    )
    ports = {"api": free_port(), "worker-1": free_port(), "worker-2": free_port()}
    api_log = (project / "api.log").open("ab")
    api = subprocess.Popen(
        [*KNEO, "service", "serve", "--no-worker",
         "--host", "127.0.0.1", "--port", str(free_port())],
        cwd=project,
        env={**env, "KNEO_SERV_METRICS_PORT": str(ports["api"])},
        stdout=api_log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    procs.items.append(api)
    for name in ("worker-1", "worker-2"):
        procs.worker(project, {**env, "KNEO_SERV_METRICS_PORT": str(ports[name])})
    for port in ports.values():
        wait_for(lambda p=port: _get(f"http://127.0.0.1:{p}/metrics"), 60, "a metrics port")
    manager = open_manager(project, db_url)
    try:
        runs = [
            manager.start_run_from_spec(input_text=f"m{i}", spec_path=project / "three.yaml")
            for i in range(RUNS)
        ]
        wait_for(
            lambda: all(manager.store.runs.get_run(r.run_id).status == "succeeded" for r in runs),
            90,
            "the queued runs to succeed",
        )
    finally:
        manager.store.close()
    targets = [f"127.0.0.1:{p}" for p in ports.values()]
    with running(tmp_path, targets) as prometheus:
        prometheus.scraped(len(targets))
        total = 'sum(kneo_runs_total{status="succeeded"})'
        counted = prometheus.wait_for(
            f"{total} == {RUNS}",
            lambda: [s for s in prometheus.query(total) if float(s["value"][1]) == RUNS],
        )
        assert counted
        by_target = {
            s["metric"]["instance"]: float(s["value"][1])
            for s in prometheus.query('kneo_runs_total{status="succeeded"}')
        }
        api_target = f"127.0.0.1:{ports['api']}"
        assert by_target.get(api_target, 0.0) == 0.0  # the API ran none of them
        assert sum(by_target.values()) == RUNS
        assert len(prometheus.query("kneo_build_info")) == len(targets)
        # the database gauges: the same on every target, so max (not sum) is the truth
        depth = prometheus.query("kneo_queue_depth")
        assert len(depth) == len(targets) and {s["value"][1] for s in depth} == {"0"}
