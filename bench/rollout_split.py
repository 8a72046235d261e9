"""What the rollout split adds to a bundle run's start, in process on a scratch SQLite store.

The split (:func:`kneo.platform.bundles.split`) reads the active revision and, joined in the
same statement, the bundle's newest rollout (a run on the stable side then reads the stable
revision's row); a run started in a rollout also adds one upsert of its side's counters to
the run's first transaction. Timed: a whole ``run_bundle`` of a one-step scripted agent, and
the split alone (which replaces the plain read of the active revision: ``resolve``), with no
rollout and with one in force (CPU microseconds per run, the median of ``--rounds``).

    python bench/rollout_split.py [--runs 300] [--rounds 5]
    python bench/rollout_split.py --instructions [--runs 100]   # callgrind, load-independent

``--instructions`` counts what one run's start costs in instructions (valgrind's callgrind,
per run as the difference between a count of ``2 x runs`` and one of ``runs``, each in a
fresh process): a whole ``run_bundle`` as it is (``split``), with the split swapped for the
plain read it replaced (``resolve``: the start before rollouts), and with a rollout in force.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kneo.clock import ManualClock
from kneo.platform import bundles, create_platform
from kneo.platform.bundles import resolve, run_bundle, split
from kneo.settings import Settings
from kneo.spec.project import ProjectContext
from kneo.store import open_store


def spec(text: str) -> dict[str, Any]:
    model = {"provider": "dummy", "name": "dummy", "script": [{"text": text}]}
    return {"version": "v1", "agent": {"name": "writer", "system_prompt": "Write.", "model": model}}


def cpu_us(action: Callable[[], object], runs: int, rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(runs):
            action()
        samples.append((time.process_time() - start) * 1e6 / runs)
    return round(statistics.median(samples), 1)


def world(root: Path) -> tuple[Any, Any]:
    """A scratch project with revisions 1 and 2 of ``writer`` in ``dev``: (store, platform)."""
    (root / ".kneo").mkdir()
    (root / ".kneo" / "config.yaml").write_text("version: v1\nenvironments: {dev: {}}\n")
    settings = Settings.from_env({})
    store = open_store(f"sqlite:///{root / 'bench.sqlite'}", clock=ManualClock())
    manager = create_platform(
        settings=settings,
        project=ProjectContext.discover(cwd=root, settings=settings),
        store=store,
        clock=store.clock,
    )
    for revision in (1, 2):
        with store.transaction() as tx:
            tx.add_revision(
                "writer", "dev", digest=f"sha256:{revision:064d}", status="active",
                spec=spec(f"draft {revision}"),
            )  # fmt: skip
    return store, manager


def begin(store: Any) -> None:
    """A rollout of revision 2 over 1 at 50 %."""
    policy = {"rollout": {"steps": [{"set_weight": 50}, {"set_weight": 100}]}}
    with store.transaction() as tx:
        tx.begin_rollout(
            "ro_bench", bundle_name="writer", environment="dev", stable_revision=1,
            canary_revision=2, canary_digest=None, commit=None, weight=50, step=1,
            policy=policy,
        )  # fmt: skip


def child(mode: str, runs: int) -> None:
    """What one counted process does: ``runs`` starts in ``mode`` after a warm-up."""
    with tempfile.TemporaryDirectory(prefix="kneo-split-") as tmp:
        store, manager = world(Path(tmp))
        if mode == "resolve":
            bundles.split = lambda s, b, e, _session: (resolve(s, b, e), None)
        if mode == "rollout":
            begin(store)
        for _ in range(30):
            run_bundle(manager, bundle="writer", environment="dev", input_text="warm")
        for _ in range(runs):
            run_bundle(manager, bundle="writer", environment="dev", input_text="hi")
        store.close()


def counted(mode: str, runs: int) -> int:
    """Instructions of a fresh process starting ``runs`` runs in ``mode``."""
    with tempfile.TemporaryDirectory(prefix="kneo-split-cg-") as tmp:
        out = Path(tmp) / "cg"
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        command = [sys.executable, __file__, "--child", mode, "--runs", str(runs)]
        subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *command],
            env=env, check=True, capture_output=True,
        )  # fmt: skip
        totals = [line for line in out.read_text().splitlines() if line.startswith("totals:")]
        return int(totals[0].split()[1])


def instructions(runs: int) -> dict[str, Any]:
    """Instructions per run start in each mode, and the split's share over the plain read."""
    per = {m: (counted(m, 2 * runs) - counted(m, runs)) / runs for m in MODES}
    return {
        **{f"{m}_instructions": round(n) for m, n in per.items()},
        "split_over_resolve": round(per["split"] / per["resolve"], 4),
        "rollout_over_resolve": round(per["rollout"] / per["resolve"], 4),
    }


MODES = ("resolve", "split", "rollout")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--instructions", action="store_true", help="count, under callgrind")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.runs)
        return 0
    if args.instructions:
        print(json.dumps(instructions(min(args.runs, 100))))
        return 0
    with tempfile.TemporaryDirectory(prefix="kneo-split-") as tmp:
        root = Path(tmp)
        store, manager = world(root)

        def start() -> object:
            return run_bundle(manager, bundle="writer", environment="dev", input_text="hi")

        for _ in range(30):
            start()  # warm: imports, the prepared spec
        out: dict[str, Any] = {
            "run_us": cpu_us(start, args.runs, args.rounds),
            "split_us": cpu_us(lambda: split(store, "writer", "dev", None), args.runs, args.rounds),
        }
        begin(store)
        out["run_in_rollout_us"] = cpu_us(start, args.runs, args.rounds)
        out["split_in_rollout_us"] = cpu_us(
            lambda: split(store, "writer", "dev", None), args.runs, args.rounds
        )
        out["resolve_us"] = cpu_us(lambda: resolve(store, "writer", "dev"), args.runs, args.rounds)
        # what the split adds over the read it replaces, as a share of a run's start
        out["added_share"] = round((out["split_us"] - out["resolve_us"]) / out["run_us"], 4)
        out["added_share_in_rollout"] = round(
            (out["run_in_rollout_us"] - out["run_us"]) / out["run_us"], 4
        )
        print(json.dumps(out))
        store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
