"""One rollout's analysis pass over 100,000 runs: the figures of both sides and the verdict.

Counts ``--runs`` runs of one rollout through the transactions' own writes (a 10 % canary;
outcomes, latencies, decisions and cost drawn from a fixed seed) plus as many of another
rollout (what the pass must not read), then times :meth:`RolloutFacet.figures` and
:func:`~kneo.controller.rollouts.judge` together, the median of ``--passes``.
The issue's bar: under 100 ms a pass on both databases.

    python bench/rollout_analysis.py                        # SQLite, a scratch file
    python bench/rollout_analysis.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from kneo.controller.rollout_pass import analysed
from kneo.controller.rollouts import judge
from kneo.policy.rollout import AnalysisRule
from kneo.store import open_store
from kneo.store.rollouts import rollout_sums


def fill(store: Any, rollout_id: str, n: int, seed: int) -> None:
    """``n`` runs of ``rollout_id`` as their own transactions count them (a 10 % canary,
    3 % failures, 0-2 decisions a run, lognormal latencies), 1,000 runs a transaction."""
    rng = random.Random(seed)
    for start in range(0, n, 1000):
        with store.transaction() as tx:
            for _ in range(start, min(n, start + 1000)):
                side = {"id": rollout_id, "track": "canary" if rng.random() < 0.1 else "stable"}
                tx.note_rollout(side, started=True)
                decisions = [
                    (
                        "review" if rng.random() < 0.5 else "approval",
                        "rejected"
                        if rng.random() < 0.1
                        else "edited"
                        if rng.random() < 0.2
                        else "approved",
                    )
                    for _ in range(rng.randint(0, 2))
                ]
                if decisions:
                    tx.note_rollout(side, decisions=decisions)
                if rng.random() < 0.97:
                    status = "failed" if rng.random() < 0.03 else "succeeded"
                    latency = int(rng.lognormvariate(7, 0.6))
                    tx.note_rollout(
                        side, status=status, latency_ms=latency, cost=rng.uniform(0.001, 0.02)
                    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=None, help="default: a scratch SQLite file")
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--passes", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kneo-rollout-bench-") as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.sqlite'}"
        store = open_store(url)
        try:
            with store.engine.begin() as conn:
                conn.execute(sa.delete(rollout_sums))
            t0 = time.perf_counter()
            for rollout_id, seed in (("ro_bench", 1), ("ro_other", 2)):
                fill(store, rollout_id, args.runs, seed)
            filled = time.perf_counter() - t0
            if store.backend == "postgresql":
                with store.engine.begin() as conn:
                    conn.execute(sa.text("ANALYZE rollout_sums"))
            rule = AnalysisRule(min_runs=100, max_latency_ratio=1.5, max_cost_ratio=1.5)
            times, verdict = [], None
            for _ in range(args.passes):
                t0 = time.perf_counter()
                sides = store.rollouts.figures("ro_bench")
                verdict = judge(rule, analysed(sides["canary"]), analysed(sides["stable"]))
                times.append((time.perf_counter() - t0) * 1000)
            with store.engine.begin() as conn:
                rows = conn.execute(sa.select(sa.func.count()).select_from(rollout_sums)).scalar()
                conn.execute(sa.delete(rollout_sums))
            assert verdict is not None
            print(
                json.dumps(
                    {
                        "backend": store.backend,
                        "runs": args.runs,
                        "median_ms": round(statistics.median(times), 2),
                        "max_ms": round(max(times), 2),
                        "canary_runs": sides["canary"].runs,
                        "stable_runs": sides["stable"].runs,
                        "verdict": verdict.outcome,
                        "p95_latency_ms": sides["stable"].p95_latency_ms,
                        "sum_rows": rows,
                        "fill_us_per_run": round(filled * 1e6 / (2 * args.runs), 1),
                    }
                )
            )
        finally:
            store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
