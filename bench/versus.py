"""The step path against another checkout: CPU per 1-step run, 10-step run, pause and warm
resume, rounds interleaved, each side in its own process.

    python bench/versus.py --baseline /path/to/other/checkout [--sync normal|full]
        [--rounds 16] [--inner 8]

Each side is a child process with ``PYTHONPATH`` at its checkout (the baseline's own
``.venv/bin/python`` when it has one), a platform over a fresh SQLite file with a 1-step and a
10-step function workflow and the approval example, warmed up, then asked for ``--inner``
runs of each per round, the sides alternating which goes first. Reported per side: CPU per
step ((10-step - 1-step) / 9), per 10-step run, per 1-step run, per pause and per warm
resume (a paused approval run resumed in-process to its end), by ``time.process_time``
(which a loaded machine moves far less than wall time): medians, and this checkout's ratio to
the baseline. Not part of the test run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, shutil, sys, tempfile, time
from pathlib import Path
repo, sync = sys.argv[1], sys.argv[2]
root = Path(tempfile.mkdtemp())
(root / "benchsteps.py").write_text("def step(text):\n    return text + '.'\n")
sys.path.insert(0, str(root))
for n in (1, 10):
    steps = [{"id": f"s{i}", "kind": "function", "ref": "benchsteps:step"} for i in range(n)]
    spec = {"version": "v1", "workflow": {"type": "sequential", "name": f"s{n}", "steps": steps}}
    (root / f"steps{n}.yaml").write_text(json.dumps(spec))
shutil.copytree(Path(repo) / "examples", root / "examples",
                ignore=shutil.ignore_patterns("__pycache__", "keys"))
from kneo.platform import create_platform
from kneo.settings import Settings
from kneo.spec.project import ProjectContext
settings = Settings.from_env({"KNEO_SERV_SQLITE_SYNCHRONOUS": sync})
m = create_platform(settings, ProjectContext.discover(cwd=root, settings=settings))
specs = {"run1": root / "steps1.yaml", "run10": root / "steps10.yaml",
         "pause": root / "examples" / "hitl_approval.yaml"}
texts = {"run1": "x", "run10": "x", "pause": "launch"}
for _ in range(5):
    for k in specs:
        m.run_from_spec(input_text=texts[k], spec_path=specs[k])
print("ready", flush=True)
try:  # the decision as an object (since wave 2) or as keywords (before)
    from kneo import Decision
    def resume(p):
        return m.resume(p.continuation_id, Decision(p.request_id, "approved"))
except ImportError:
    def resume(p):
        return m.resume(p.continuation_id, request_id=p.request_id, decision="approved")
assert resume(m.run_from_spec(input_text="launch", spec_path=specs["pause"])).status == "succeeded"
for line in sys.stdin:
    out = {}
    for k in specs:
        cpu = []
        for _ in range(int(line)):
            c0 = time.process_time()
            m.run_from_spec(input_text=texts[k], spec_path=specs[k])
            cpu.append(time.process_time() - c0)
        out[k] = cpu
    out["resume"] = []
    for p in [m.run_from_spec(input_text="launch", spec_path=specs["pause"])
              for _ in range(int(line))]:
        c0 = time.process_time()
        resume(p)
        out["resume"].append(time.process_time() - c0)
    print(json.dumps(out), flush=True)
"""


def start(repo: Path, sync: str) -> subprocess.Popen[str]:
    python = repo / ".venv" / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KNEO")}
    env["PYTHONPATH"] = str(repo)
    proc = subprocess.Popen(
        [str(python) if python.exists() else sys.executable, "-c", CHILD, str(repo), sync],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=os.sep,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def figures(samples: dict[str, list[float]]) -> dict[str, float]:
    med = statistics.median
    return {
        "step_us": (med(samples["run10"]) - med(samples["run1"])) / 9 * 1e6,
        "run10_ms": med(samples["run10"]) * 1e3,
        "run1_ms": med(samples["run1"]) * 1e3,
        "pause_ms": med(samples["pause"]) * 1e3,
        "resume_ms": med(samples["resume"]) * 1e3,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True, help="the other checkout")
    parser.add_argument("--sync", choices=["normal", "full"], default="normal")
    parser.add_argument("--rounds", type=int, default=16)
    parser.add_argument("--inner", type=int, default=8)
    args = parser.parse_args()
    sides = {"this": start(REPO, args.sync), "baseline": start(args.baseline, args.sync)}
    samples: dict[str, dict[str, list[float]]] = {
        name: {"run1": [], "run10": [], "pause": [], "resume": []} for name in sides
    }
    try:
        for round_no in range(args.rounds):
            order = list(sides) if round_no % 2 == 0 else list(sides)[::-1]
            for name in order:
                proc: Any = sides[name]
                proc.stdin.write(f"{args.inner}\n")
                proc.stdin.flush()
                for kind, cpu in json.loads(proc.stdout.readline()).items():
                    samples[name][kind].extend(cpu)
    finally:
        for proc in sides.values():
            assert proc.stdin is not None
            proc.stdin.close()
            proc.wait(timeout=30)
    this, base = figures(samples["this"]), figures(samples["baseline"])
    print(
        f"synchronous={args.sync} rounds={args.rounds}x{args.inner} load={os.getloadavg()[0]:.1f}"
    )
    print(f"{'CPU':<10}" + "".join(f"{k:>14}" for k in this))
    for name, row in (("this", this), ("baseline", base)):
        print(f"{name:<10}" + "".join(f"{v:>14.3f}" for v in row.values()))
    print(f"{'ratio':<10}" + "".join(f"{this[k] / base[k]:>14.3f}" for k in this))


if __name__ == "__main__":
    main()
