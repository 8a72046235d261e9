"""Human-in-the-loop benchmark: pause, resume in a fresh process, 1,000 paused runs.

    python bench/hitl.py [--runs 1000]

Kneo runs ``examples/hitl_approval.yaml`` (draft -> approve -> publish) on SQLite; LangGraph
runs the same three nodes with ``interrupt()`` and its ``SqliteSaver`` (when installed:
``pip install -e '.[bench]'``), in the same invocation, on the same disk.

* pause: start -> paused state persisted (median, in-process);
* resume: a fresh process loads the store, resumes and finishes (wall, median of 5);
* 1,000 paused runs: runs/s to reach the pause, and database bytes per paused run
  (file size growth / runs, after a WAL checkpoint).
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]
sys.path.append(str(REPO))

from bench.peers_sides import LG_GRAPH  # noqa: E402

KNEO_RESUME = textwrap.dedent("""
    import sys, time
    t0 = time.perf_counter()
    from kneo import Decision
    from kneo.platform import create_platform
    from kneo.settings import Settings
    from kneo.spec.project import ProjectContext
    s = Settings.from_env({})
    m = create_platform(s, ProjectContext.discover(cwd=__import__("pathlib").Path(sys.argv[1]), settings=s))
    r = m.resume(sys.argv[2], Decision(sys.argv[3], "approved"))
    assert r.status == "succeeded", r
    print(time.perf_counter() - t0)
""")

#: LangGraph's side: the approval graph of ``bench/peers.py`` (one text for both benchmarks)
#: over its ``SqliteSaver``, its imports done before the clock starts.
LG = LG_GRAPH + textwrap.dedent("""
    import sys, time
    import langgraph.checkpoint.sqlite

    if __name__ == "__main__":
        db, mode, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
        t0 = time.perf_counter()
        graph = approval_graph(saver(f"sqlite:///{db}"))
        if mode == "pause":
            samples = []
            for i in range(n):
                s = time.perf_counter()
                graph.invoke({"text": "launch"}, {"configurable": {"thread_id": f"t{i}"}})
                samples.append(time.perf_counter() - s)
            print(sum(samples), sorted(samples)[len(samples) // 2])
        else:
            out = graph.invoke(Command(resume="approved"), {"configurable": {"thread_id": "t0"}})
            assert out["text"].startswith("Published."), out
            print(time.perf_counter() - t0)
""")


def db_bytes(path: Path) -> int:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return path.stat().st_size


def kneo_bench(root: Path, runs: int) -> dict[str, float]:
    from kneo.platform import create_platform
    from kneo.settings import Settings
    from kneo.spec.project import ProjectContext

    shutil.copytree(
        REPO / "examples", root / "examples", ignore=shutil.ignore_patterns("__pycache__", "keys")
    )
    settings = Settings.from_env({})
    manager = create_platform(settings, ProjectContext.discover(cwd=root, settings=settings))
    spec = root / "examples" / "hitl_approval.yaml"
    first = manager.run_from_spec(input_text="launch", spec_path=spec)  # warm: compile, import
    db = root / ".kneo" / "kneo_runs.sqlite"
    before = db_bytes(db)
    samples = []
    t0 = time.perf_counter()
    for _ in range(runs):
        s = time.perf_counter()
        paused = manager.run_from_spec(input_text="launch", spec_path=spec)
        samples.append(time.perf_counter() - s)
    total = time.perf_counter() - t0
    assert paused.status == "paused"
    manager.store.close()
    grown = db_bytes(db) - before
    resumes = []
    for _ in range(5):
        s = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", KNEO_RESUME, str(root), first.continuation_id, first.request_id],
            capture_output=True,
            text=True,
            cwd=root,
            env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        )
        resumes.append(time.perf_counter() - s)
        if out.returncode == 0:
            inner = float(out.stdout.strip().splitlines()[-1])
            break
        raise SystemExit(out.stderr)
    return {
        "pause_ms": statistics.median(samples) * 1000,
        "runs_per_s": runs / total,
        "bytes_per_run": grown / runs,
        "resume_wall_ms": resumes[0] * 1000,
        "resume_inproc_ms": inner * 1000,
    }


def langgraph_bench(root: Path, runs: int) -> dict[str, float] | None:
    try:
        import langgraph.checkpoint.sqlite  # noqa: F401
    except ImportError:
        return None
    script = root / "lg.py"
    script.write_text(LG)
    db = root / "lg.sqlite"
    out = subprocess.run(
        [sys.executable, str(script), str(db), "pause", "1"],
        check=True,
        capture_output=True,
        text=True,
    )
    before = db_bytes(db)
    out = subprocess.run(
        [sys.executable, str(script), str(db), "pause", str(runs)],
        check=True,
        capture_output=True,
        text=True,
    )
    total, median = (float(x) for x in out.stdout.split())
    grown = db_bytes(db) - before
    s = time.perf_counter()
    out = subprocess.run(
        [sys.executable, str(script), str(db), "resume", "1"],
        check=True,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - s
    return {
        "pause_ms": median * 1000,
        "runs_per_s": runs / total,
        "bytes_per_run": grown / runs,
        "resume_wall_ms": wall * 1000,
        "resume_inproc_ms": float(out.stdout) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "k").mkdir()
        (Path(tmp) / "l").mkdir()
        kneo = kneo_bench(Path(tmp) / "k", args.runs)
        lg = langgraph_bench(Path(tmp) / "l", args.runs)
    rows: list[tuple[str, dict[str, Any]]] = [("kneo", kneo)] + ([("langgraph", lg)] if lg else [])
    print(
        f"{'':10} {'pause ms':>9} {'resume ms (fresh proc / in-proc)':>34} "
        f"{'paused runs/s':>14} {'bytes/paused run':>17}"
    )
    for name, r in rows:
        print(
            f"{name:10} {r['pause_ms']:9.2f} {r['resume_wall_ms']:18.0f} / "
            f"{r['resume_inproc_ms']:<13.0f} {r['runs_per_s']:14.1f} {r['bytes_per_run']:17.0f}"
        )
    if lg:
        print(
            f"ratios: runs/s kneo/langgraph = {kneo['runs_per_s'] / lg['runs_per_s']:.2f}x "
            f"(target >= 2x); bytes/run kneo/langgraph = "
            f"{kneo['bytes_per_run'] / lg['bytes_per_run']:.2f} (target <= 0.5)"
        )
    else:
        print("langgraph not installed: Kneo numbers only")


if __name__ == "__main__":
    main()
