"""Eval throughput: cases per second on the dummy provider, serial against parallel.

    python bench/evals.py [--repeat 6] [--workers 1,2,4]

The suite is the example support agent's (examples/evals/support_agent.eval.yaml, eleven
cases: plain replies, tool calls, a tool approval pause, a JSON schema, a judge) repeated
``--repeat`` times under fresh case ids, run by :func:`kneo.evals.run_suite` exactly as
``kneo eval run`` runs it: each case through the engine over a throwaway SQLite store per
worker. Wall time includes building the workers' platforms and stores (one migration each).
Reported as same-run ratios against one worker (docs/performance.md).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kneo.evals import load_suite, run_suite  # noqa: E402

SPEC = REPO / "examples" / "support_agent.yaml"
SUITE = REPO / "examples" / "evals" / "support_agent.eval.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=6, help="copies of the eleven cases")
    parser.add_argument("--workers", default="1,2,4", help="worker counts to compare")
    parser.add_argument("--rounds", type=int, default=3, help="best of this many runs each")
    args = parser.parse_args()
    os.chdir(REPO)
    base = load_suite(SUITE)
    cases = [
        case.model_copy(update={"id": f"{case.id}-{i}"})
        for i in range(args.repeat)
        for case in base.cases
    ]
    suite = base.model_copy(update={"cases": cases})
    run_suite(suite.model_copy(update={"cases": cases[:2]}), SPEC, workers=1)  # warm imports
    print(f"{len(cases)} cases, cpus={os.cpu_count()}, best of {args.rounds}")
    serial: float | None = None
    for workers in (int(w) for w in args.workers.split(",")):
        best = float("inf")
        for _ in range(args.rounds):
            started = time.perf_counter()
            result = run_suite(suite, SPEC, workers=workers)
            best = min(best, time.perf_counter() - started)
            assert result.passed == result.total, [c.failures for c in result.cases if c.failures]
        rate = len(cases) / best
        serial = serial or rate
        print(
            f"workers={workers}: {best:.2f} s, {rate:.1f} cases/s, "
            f"{rate / serial:.2f}x serial, {best / len(cases) * 1000:.1f} ms/case"
        )


if __name__ == "__main__":
    main()
