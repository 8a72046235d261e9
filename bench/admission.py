"""Per-run cost of starting and running a spec in-process, this checkout against another.

What ``POST /v1/runs`` pays besides HTTP: admission (the environment's rules, the cached
checked spec), the grant a run carries (what it may reach on the host), the run's steps with
their redacted checkpoints, and the outcome. The spec is the service benchmark's three
function steps plus an agent step on the ``dummy`` provider, so a model call goes through
the grant too. Each side runs in a fresh process of its own (``PYTHONPATH`` set to its
checkout), rounds alternate so a load spike hits both, and the CPU time per run (which moves
far less on a shared machine than wall time) is compared as a same-run ratio. On a machine
too loaded for that, ``--instructions`` counts instructions instead (valgrind's callgrind:
the same count whatever else runs), per run as the difference between two run counts.

    python bench/admission.py --baseline /path/to/other/checkout [--runs 300] [--rounds 5]
    python bench/admission.py --baseline OLD --candidate NEW   # two other checkouts
    python bench/admission.py --baseline OLD --instructions    # deterministic, slow
    python bench/admission.py --baseline OLD --instructions --environment dev   # runs name it
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SPEC = """\
version: v1
agent:
  name: writer
  model: {provider: dummy, script: [{text: "done: {input}"}]}
workflow:
  type: sequential
  name: bench-admission
  steps:
    - {id: draft, kind: function, ref: "examples.human_functions:draft_report"}
    - {id: review, kind: function, ref: "examples.human_functions:draft_report"}
    - {id: write, kind: agent, ref: writer}
    - {id: publish, kind: function, ref: "examples.human_functions:publish_report"}
"""

CHILD = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from kneo.platform import create_platform
    from kneo.settings import Settings
    from kneo.spec.project import ProjectContext
    from kneo.store import open_store

    root, runs = Path(sys.argv[1]), int(sys.argv[2])
    env = sys.argv[3] or None  # the environment each run names ("": none, the default)
    settings = Settings.from_env({"KNEO_SERV_API_KEYS": "ops:bench-key-0123456789:operator"})
    project = ProjectContext.discover(cwd=root, settings=settings)
    store = open_store(f"sqlite:///{root / 'bench.sqlite'}", settings=settings)
    manager = create_platform(settings, project, store=store)
    spec = str(root / "spec.yaml")
    for _ in range(20):  # warm: imports, caches, the prepared spec
        manager.run_from_spec(spec_path=spec, input_text="warm", environment=env)
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(runs):
        result = manager.run_from_spec(spec_path=spec, input_text=f"run {i}", environment=env)
        assert result.status == "succeeded", result
    print(json.dumps({
        "cpu_us": (time.process_time() - cpu) * 1e6 / runs,
        "wall_us": (time.perf_counter() - wall) * 1e6 / runs,
    }))
    store.close()
    """
)


def one(
    checkout: Path, runs: int, *, callgrind: bool = False, environment: str = ""
) -> dict[str, float]:
    """One fresh process of ``checkout``: per-run CPU and wall microseconds (and, under
    callgrind, the process's instruction count)."""
    with tempfile.TemporaryDirectory(prefix="kneo-admission-") as tmp:
        root = Path(tmp)
        (root / ".kneo").mkdir()
        (root / ".kneo" / "config.yaml").write_text("version: v1\n")
        (root / "spec.yaml").write_text(SPEC)
        env = {k: v for k, v in os.environ.items() if not k.startswith("KNEO_")}
        env["PYTHONPATH"] = str(checkout)
        env["PYTHONHASHSEED"] = "0"  # the same dict and set layouts: repeatable counts
        command = [sys.executable, "-c", CHILD, str(root), str(runs), environment]
        if callgrind:
            out = root / "callgrind.out"
            command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *command]
        done = subprocess.run(
            command, cwd=checkout, env=env, capture_output=True, text=True, check=True
        )
        result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
        if callgrind:
            totals = [line for line in out.read_text().splitlines() if line.startswith("totals:")]
            result["instructions"] = float(totals[0].split()[1])
        return result


def instructions_per_run(checkout: Path, runs: int, environment: str = "") -> float:
    """Instructions one run costs: (count at ``2 * runs`` - count at ``runs``) / ``runs``."""
    few = one(checkout, runs, callgrind=True, environment=environment)["instructions"]
    many = one(checkout, 2 * runs, callgrind=True, environment=environment)["instructions"]
    return (many - few) / runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True, help="another checkout")
    parser.add_argument("--candidate", type=Path, default=REPO, help="default: this checkout")
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--instructions", action="store_true", help="count, under callgrind")
    parser.add_argument(
        "--environment", default="", help="the environment each run names (default: none)"
    )
    args = parser.parse_args()
    if args.instructions:
        runs = min(args.runs, 100)
        before = instructions_per_run(args.baseline.resolve(), runs, args.environment)
        after = instructions_per_run(args.candidate.resolve(), runs, args.environment)
        print(f"baseline: {before:,.0f} instructions per run")
        print(f"    this: {after:,.0f} instructions per run")
        print(json.dumps({"baseline": before, "this": after, "ratio": round(after / before, 4)}))
        return 0
    sides: dict[str, list[dict[str, float]]] = {"baseline": [], "this": []}
    for _ in range(args.rounds):
        sides["baseline"].append(
            one(args.baseline.resolve(), args.runs, environment=args.environment)
        )
        sides["this"].append(one(args.candidate.resolve(), args.runs, environment=args.environment))
    out: dict[str, object] = {}
    for side, samples in sides.items():
        cpu = statistics.median(s["cpu_us"] for s in samples)
        wall = statistics.median(s["wall_us"] for s in samples)
        out[side] = {"cpu_us": round(cpu, 1), "wall_us": round(wall, 1)}
        print(
            f"{side:>8}: {cpu:8.1f} us CPU per run, {wall:8.1f} us wall (median of {len(samples)})"
        )
    ratios = [
        t["cpu_us"] / b["cpu_us"] for b, t in zip(sides["baseline"], sides["this"], strict=True)
    ]
    out["cpu_ratio"] = round(statistics.median(ratios), 3)
    out["cpu_ratio_rounds"] = [round(r, 3) for r in ratios]
    print(f"this / baseline CPU per run: {out['cpu_ratio']} (rounds {out['cpu_ratio_rounds']})")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
