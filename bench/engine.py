"""Engine benchmark: per-step overhead with a durable commit at every step boundary, and
pause → resume of the approval example with the resume in a fresh process.

Side by side with LangGraph's SqliteSaver on the same scenarios when langgraph is installed
(``pip install -e '.[bench]'``). Prints numbers and ratios; not part of the test run.

    python bench/engine.py [--runs 20] [--resumes 5]
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
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

STEP_MODULE = "def step(text):\n    return text + '.'\n"


def _median(samples: list[float]) -> float:
    return statistics.median(samples)


# --------------------------------------------------------------------------- kneo


def kneo_per_step(root: Path, runs: int) -> float:
    """Median per-step overhead (seconds): (t(10 steps) - t(1 step)) / 9, SQLite file store."""
    from kneo.platform import create_platform
    from kneo.settings import Settings
    from kneo.spec.project import ProjectContext

    (root / "benchsteps.py").write_text(STEP_MODULE)
    sys.path.insert(0, str(root))
    for n in (1, 10):
        spec = {"version": "v1", "workflow": {"type": "sequential", "name": f"s{n}", "steps": [
            {"id": f"s{i}", "kind": "function", "ref": "benchsteps:step"} for i in range(n)]}}
        (root / f"steps{n}.yaml").write_text(json.dumps(spec))
    settings = Settings.from_env({})
    manager = create_platform(settings, ProjectContext.discover(cwd=root, settings=settings))
    timings: dict[int, list[float]] = {1: [], 10: []}
    for _ in range(2):  # warm up compile caches and the SQLite file
        manager.run_from_spec(input_text="x", spec_path=root / "steps10.yaml")
    for _ in range(runs):
        for n in (1, 10):
            start = time.perf_counter()
            result = manager.run_from_spec(input_text="x", spec_path=root / f"steps{n}.yaml")
            timings[n].append(time.perf_counter() - start)
            assert result.status == "succeeded"
    manager.store.close()
    return (_median(timings[10]) - _median(timings[1])) / 9


def kneo_resume(root: Path, resumes: int) -> float:
    """Median wall time of ``kneo human resume ... --approve`` as a fresh process."""
    import shutil

    from kneo.platform import create_platform
    from kneo.settings import Settings
    from kneo.spec.project import ProjectContext

    shutil.copytree(REPO / "examples", root / "examples", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    settings = Settings.from_env({})
    manager = create_platform(settings, ProjectContext.discover(cwd=root, settings=settings))
    env = {k: v for k, v in os.environ.items() if not k.startswith("KNEO")}
    env["PYTHONPATH"] = str(REPO)
    samples = []
    for _ in range(resumes):
        paused = manager.run_from_spec(input_text="draft the launch announcement",
                                       spec_path=root / "examples/human_approval_workflow.yaml")
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "kneo.cli.main", "human", "resume", paused.continuation_id,
             "--request-id", paused.request_id or "", "--approve", "--json"],
            cwd=root, env=env, capture_output=True, text=True)
        samples.append(time.perf_counter() - start)
        assert json.loads(proc.stdout)["status"] == "succeeded", proc.stderr
    manager.store.close()
    return _median(samples)


# --------------------------------------------------------------------------- langgraph

LG_STEPS = textwrap.dedent("""
    import sqlite3, sys, time
    from typing import TypedDict
    from langgraph.graph import StateGraph, START, END
    from langgraph.checkpoint.sqlite import SqliteSaver

    class S(TypedDict):
        text: str

    def build(n, db):
        g = StateGraph(S)
        names = [f"s{i}" for i in range(n)]
        for name in names:
            g.add_node(name, lambda s: {"text": s["text"] + "."})
        g.add_edge(START, names[0])
        for a, b in zip(names, names[1:]):
            g.add_edge(a, b)
        g.add_edge(names[-1], END)
        saver = SqliteSaver(sqlite3.connect(db, check_same_thread=False))
        return g.compile(checkpointer=saver)
""")

LG_APPROVAL = textwrap.dedent("""
    import hashlib, sqlite3, sys
    from typing import TypedDict
    from langgraph.graph import StateGraph, START, END
    from langgraph.checkpoint.sqlite import SqliteSaver
    from langgraph.types import interrupt, Command

    class S(TypedDict):
        text: str

    def draft(s):
        return {"text": "DRAFT: " + s["text"]}

    def approve(s):
        answer = interrupt({"prompt": "Approve the draft?"})
        return {"text": s["text"] if answer == "approved" else answer}

    def publish(s):
        return {"text": "Published. " + hashlib.sha256(s["text"].encode()).hexdigest()[:10]}

    def build(db):
        g = StateGraph(S)
        g.add_node("draft", draft); g.add_node("approve", approve); g.add_node("publish", publish)
        g.add_edge(START, "draft"); g.add_edge("draft", "approve")
        g.add_edge("approve", "publish"); g.add_edge("publish", END)
        return g.compile(checkpointer=SqliteSaver(sqlite3.connect(db, check_same_thread=False)))

    if __name__ == "__main__":
        db, thread, mode = sys.argv[1], sys.argv[2], sys.argv[3]
        graph = build(db)
        config = {"configurable": {"thread_id": thread}}
        if mode == "start":
            graph.invoke({"text": "draft the launch announcement"}, config)
        else:
            out = graph.invoke(Command(resume="approved"), config)
            assert out["text"].startswith("Published."), out
            print(out["text"])
""")


def langgraph_available() -> bool:
    try:
        import langgraph
        import langgraph.checkpoint.sqlite  # noqa: F401
    except ImportError:
        return False
    return True


def langgraph_per_step(root: Path, runs: int) -> float:
    namespace: dict[str, Any] = {}
    exec(LG_STEPS, namespace)
    db = str(root / "lg_steps.sqlite")
    graphs = {n: namespace["build"](n, db) for n in (1, 10)}
    timings: dict[int, list[float]] = {1: [], 10: []}
    counter = 0
    for _ in range(2):
        counter += 1
        graphs[10].invoke({"text": "x"}, {"configurable": {"thread_id": f"w{counter}"}})
    for _ in range(runs):
        for n in (1, 10):
            counter += 1
            start = time.perf_counter()
            graphs[n].invoke({"text": "x"}, {"configurable": {"thread_id": f"t{counter}"}})
            timings[n].append(time.perf_counter() - start)
    return (_median(timings[10]) - _median(timings[1])) / 9


def langgraph_resume(root: Path, resumes: int) -> float:
    script = root / "lg_approval.py"
    script.write_text(LG_APPROVAL)
    db = str(root / "lg_approval.sqlite")
    samples = []
    for i in range(resumes):
        subprocess.run([sys.executable, str(script), db, f"t{i}", "start"], check=True,
                       capture_output=True)
        start = time.perf_counter()
        subprocess.run([sys.executable, str(script), db, f"t{i}", "resume"], check=True,
                       capture_output=True)
        samples.append(time.perf_counter() - start)
    return _median(samples)


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--resumes", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "kneo").mkdir()
        (root / "lg").mkdir()
        k_step = kneo_per_step(root / "kneo", args.runs)
        k_resume = kneo_resume(root / "kneo", args.resumes)
        print(f"kneo      per-step overhead (durable commit per step): {k_step * 1000:8.2f} ms")
        print(f"kneo      resume, fresh process (kneo human resume):   {k_resume * 1000:8.0f} ms")
        if not langgraph_available():
            print("langgraph not installed: pip install -e '.[bench]' for the comparison")
            return
        l_step = langgraph_per_step(root / "lg", args.runs)
        l_resume = langgraph_resume(root / "lg", args.resumes)
        print(f"langgraph per-step overhead (SqliteSaver):             {l_step * 1000:8.2f} ms")
        print(f"langgraph resume, fresh process (script):              {l_resume * 1000:8.0f} ms")
        print(f"ratio per-step kneo/langgraph: {k_step / l_step:.2f}  (target <= 0.33)")
        print(f"ratio resume   kneo/langgraph: {k_resume / l_resume:.2f}  (target <= 0.50)")


if __name__ == "__main__":
    main()
