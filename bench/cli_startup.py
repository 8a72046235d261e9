"""CLI start-up time: median wall time of ``kneo --help``, ``kneo spec lint``, a ``kneo run``
and a ``kneo worker --once`` on an empty queue (a worker process's start).

The run is an agent whose model asks for a tool call that needs approval
(``examples/hitl_tool_approval.yaml``, in a copy of ``examples/``): it validates the call's
arguments against the tool's JSON Schema, so it pays for importing jsonschema, and pauses.

Measured against ``python -c "pass"`` in the same run, so a loaded machine shows up in the
baseline too. Targets (2-core machine): ``--help`` < 0.35 s, ``lint`` < 0.6 s.

    python bench/cli_startup.py            # 9 runs each
    python bench/cli_startup.py --runs 21
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGETS = {"kneo --help": 0.35, "kneo spec lint": 0.6}


def _kneo() -> list[str]:
    exe = shutil.which("kneo")
    return [exe] if exe else [sys.executable, "-m", "kneo.cli.main"]


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(cmd: list[str], runs: int, cwd: Path) -> tuple[float, float, float]:
    """(median wall, min wall, median CPU) seconds over ``runs`` after one warm-up run.

    CPU time (user + system of the child) is what a busy machine inflates least.
    """
    subprocess.run(cmd, cwd=cwd, capture_output=True, check=False)
    walls, cpus = [], []
    for _ in range(runs):
        cpu0, start = _child_cpu(), time.perf_counter()
        subprocess.run(cmd, cwd=cwd, capture_output=True, check=False)
        walls.append(time.perf_counter() - start)
        cpus.append(_child_cpu() - cpu0)
    return statistics.median(walls), min(walls), statistics.median(cpus)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    kneo = _kneo()
    project = Path(tempfile.mkdtemp(prefix="kneo-cli-bench-"))
    shutil.copytree(REPO / "examples", project / "examples")
    cases = {
        'python -c "pass"': ([sys.executable, "-c", "pass"], REPO),
        "kneo --help": ([*kneo, "--help"], REPO),
        "kneo spec lint": ([*kneo, "spec", "lint", "examples/research_agent.yaml"], REPO),
        "kneo run (tool call)": (
            [*kneo, "run", "examples/hitl_tool_approval.yaml", "-i", "go"],
            project,
        ),
        "kneo worker --once": ([*kneo, "worker", "--once"], project),
    }
    print(f"{'command':<20} {'median s':>9} {'min s':>7} {'cpu s':>7} {'target s':>9}  status")
    failed = False
    try:
        for name, (cmd, cwd) in cases.items():
            median, best, cpu = measure(cmd, args.runs, cwd)
            target = TARGETS.get(name)
            status = "" if target is None else ("ok" if median < target else "SLOW")
            failed |= status == "SLOW"
            print(f"{name:<20} {median:>9.3f} {best:>7.3f} {cpu:>7.3f} {target or '':>9}  {status}")
    finally:
        shutil.rmtree(project)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
