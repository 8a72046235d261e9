"""Runs executing on several threads of one process against one thread.

    python bench/threads.py [--threads 4] [--runs 400] [--repeat 3] [--json]

In-process on SQLite (a fresh temporary database per measurement), each of ``--threads``
threads executes ``--runs`` synchronous runs of the 3-step function workflow that
``bench/service.py`` posts. Reported per configuration (median of ``--repeat``, alternated):
runs per second, process CPU per run, voluntary context switches per run. Configurations:
one thread (the baseline) and ``--threads`` threads. Linux only (``resource``
counters). Measures the ``kneo`` package on ``sys.path``.
"""

from __future__ import annotations

import argparse
import json
import resource
import runpy
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]
sys.path.append(str(Path(__file__).resolve().parents[1]))  # examples.human_functions

#: the 3-step function workflow ``bench/service.py`` posts
SPEC: str = runpy.run_path(str(Path(__file__).with_name("service.py")))["SPEC"]


def measure(threads: int, runs: int) -> dict[str, float]:
    from kneo.platform import create_platform
    from kneo.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "three_steps.yaml"
        spec.write_text(SPEC)
        env = {"KNEO_SERV_DATABASE_URL": f"sqlite:///{Path(tmp) / 'runs.sqlite'}"}
        manager = create_platform(Settings.from_env(env))
        for _ in range(100):  # warm: imports, compiled spec, page cache
            manager.run_from_spec(input_text="benchmark", spec_path=spec)

        def work() -> None:
            for _ in range(runs):
                manager.run_from_spec(input_text="benchmark", spec_path=spec)

        before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        workers = [threading.Thread(target=work) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        elapsed, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF)
        manager.store.close()
    total = threads * runs
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "runs_per_s": total / elapsed,
        "cpu_ms_per_run": cpu * 1000 / total,
        "switches_per_run": (after.ru_nvcsw - before.ru_nvcsw) / total,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--runs", type=int, default=400, help="runs per thread")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    configs = {"1 thread": 1, f"{args.threads} threads": args.threads}
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in configs}
    for _ in range(args.repeat):
        for name, threads in configs.items():
            runs = args.runs * args.threads // threads  # the same total per configuration
            samples[name].append(measure(threads, runs))
    result = {
        name: {key: statistics.median(s[key] for s in found) for key in found[0]}
        for name, found in samples.items()
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"{'':<24}{'runs/s':>10}{'CPU ms/run':>12}{'switches/run':>14}")
    for name, r in result.items():
        print(
            f"{name:<24}{r['runs_per_s']:>10.0f}{r['cpu_ms_per_run']:>12.3f}"
            f"{r['switches_per_run']:>14.1f}"
        )


if __name__ == "__main__":
    main()
