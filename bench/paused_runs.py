"""Paused runs back to back against another checkout: CPU per paused run over ``--runs`` runs
of ``examples/hitl_approval.yaml`` to their approval step, in one process per side.

    python bench/paused_runs.py --baseline /path/to/other/checkout [--runs 1000] [--pairs 5]
        [--instructions]

Each side is a fresh process (``PYTHONPATH`` at its checkout, this venv's Python, bytecode
cached) over a fresh SQLite file (``normal``): ``create_platform``, one warm-up run, then the
loop, with ``getrusage`` around it. The WAL grows through the loop and SQLite checkpoints it
as it would in a library process, so this is what many pauses cost together (pages included),
where ``bench/versus.py``'s pause is a few at a time. Pairs alternate which side goes first;
printed per pair: user and system CPU per paused run and this checkout's ratio.
``--instructions``: instead, callgrind's count inside the loop (one process a side), per run.
Not part of the test run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.append(str(REPO))  # bench.* (appended: the kneo measured stays the same)

from bench.instructions import EXAMPLES_SKIP, callgrind, child_env  # noqa: E402

CHILD = r"""
import json, operator, resource, sys
from pathlib import Path
from kneo.platform import create_platform
manager = create_platform()
spec, runs = Path("examples/hitl_approval.yaml"), int(sys.argv[1])
manager.run_from_spec(input_text="launch", spec_path=spec)
def loop():
    for _ in range(runs):
        manager.run_from_spec(input_text="launch", spec_path=spec)
before = resource.getrusage(resource.RUSAGE_SELF)
operator.call(loop)  # (callgrind collects inside this call alone)
after = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"user": (after.ru_utime - before.ru_utime) / runs * 1e3,
                  "sys": (after.ru_stime - before.ru_stime) / runs * 1e3}))
"""


def _side(checkout: Path, runs: int, *, instructions: bool) -> dict[str, float]:
    """One process of ``checkout``: CPU (ms) per paused run, or instructions per run."""
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        (project / ".kneo").mkdir()
        shutil.copytree(checkout / "examples", project / "examples", ignore=EXAMPLES_SKIP)
        url = f"sqlite:///{project}/.kneo/kneo.db"
        env = child_env(checkout, project, KNEO_SERV_DATABASE_URL=url)
        args = [sys.executable, "-c", CHILD, str(runs)]
        if not instructions:
            done = subprocess.run(args, cwd=project, env=env, check=True, capture_output=True)
            found: dict[str, float] = json.loads(done.stdout)
            return found
        subprocess.run([sys.executable, "-c", "import kneo.platform"], cwd=project, env=env)
        only = ["--collect-atstart=no", "--toggle-collect=_operator_call"]
        return {"instructions": callgrind([*only, *args], project, env)[0] / runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True, help="the other checkout")
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--instructions", action="store_true")
    args = parser.parse_args()
    sides = {"this": REPO, "baseline": args.baseline.resolve()}
    if args.instructions:
        mine, theirs = (_side(c, args.runs, instructions=True) for c in sides.values())
        m, b = mine["instructions"] / 1e6, theirs["instructions"] / 1e6
        print(f"instructions per paused run: {m:.3f} M against {b:.3f} M ({m / b:.3f}x)")
        return
    for pair in range(args.pairs):
        order = list(sides.items()) if pair % 2 == 0 else list(sides.items())[::-1]
        got = {name: _side(checkout, args.runs, instructions=False) for name, checkout in order}
        a, b = got["this"], got["baseline"]
        print(
            f"user {a['user']:.3f} sys {a['sys']:.3f} ms | baseline user {b['user']:.3f} "
            f"sys {b['sys']:.3f} ms | {(a['user'] + a['sys']) / (b['user'] + b['sys']):.3f}x",
            flush=True,
        )


if __name__ == "__main__":
    main()
