"""Engine benchmark: per-step overhead with a durable commit at every step boundary, and
pause → resume of the approval example with the resume in a fresh process.

Side by side with LangGraph's SqliteSaver on the same scenarios when langgraph is installed
(``pip install -e '.[bench]'``). Prints numbers and ratios; not part of the test run.

Fairness: both sides use SQLite in WAL mode and commit at every step. Per-step overhead is
measured twice — ``synchronous=NORMAL`` on both sides (Kneo's default: process-crash
durable) and ``synchronous=FULL`` on both sides (LangGraph's default: fsync per commit) —
and Kneo and LangGraph rounds are interleaved so a load spike hits both. The resume is
``kneo human resume`` in a fresh process (``KNEO_SERV_SQLITE_SYNCHRONOUS=full``) against
LangGraph's equivalent script; both may write bytecode (into a private
``PYTHONPYCACHEPREFIX``, as an installed package has it) and get one warm-up run.

    python bench/engine.py [--runs 20] [--resumes 7]
    python bench/engine.py --observe [--runs 200]   # metrics + OpenTelemetry off vs on
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
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
Timings = dict[int, list[float]]


def _median(samples: list[float]) -> float:
    return statistics.median(samples)


def per_step(timings: Timings) -> float:
    """(median t(10 steps) - median t(1 step)) / 9, in seconds."""
    return (_median(timings[10]) - _median(timings[1])) / 9


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(cmd: list[str], **kwargs: Any) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    """(wall, child CPU, result) of one subprocess."""
    cpu0, start = _child_cpu(), time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)
    return time.perf_counter() - start, _child_cpu() - cpu0, proc


def child_env(pycache: Path) -> dict[str, str]:
    """Environment of the fresh processes: bytecode allowed (private prefix), no KNEO_*."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("KNEO") and k != "PYTHONDONTWRITEBYTECODE"
    }
    env["PYTHONPATH"] = str(REPO)
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    env["KNEO_SERV_SQLITE_SYNCHRONOUS"] = "full"  # like LangGraph's default connection
    return env


# --------------------------------------------------------------------------- kneo


class KneoSteps:
    """A platform over a SQLite file with a 1-step and a 10-step function workflow."""

    def __init__(self, root: Path, synchronous: str) -> None:
        from kneo.platform import create_platform
        from kneo.settings import Settings
        from kneo.spec.project import ProjectContext

        root.mkdir(parents=True, exist_ok=True)
        (root / "benchsteps.py").write_text(STEP_MODULE)
        sys.path.insert(0, str(root))
        for n in (1, 10):
            spec = {
                "version": "v1",
                "workflow": {
                    "type": "sequential",
                    "name": f"s{n}",
                    "steps": [
                        {"id": f"s{i}", "kind": "function", "ref": "benchsteps:step"}
                        for i in range(n)
                    ],
                },
            }
            (root / f"steps{n}.yaml").write_text(json.dumps(spec))
        settings = Settings.from_env({"KNEO_SERV_SQLITE_SYNCHRONOUS": synchronous})
        self.root = root
        self.manager = create_platform(
            settings, ProjectContext.discover(cwd=root, settings=settings)
        )
        for _ in range(3):  # warm up compile caches and the SQLite file
            self.manager.run_from_spec(input_text="x", spec_path=root / "steps10.yaml")

    def round(self, timings: Timings) -> None:
        for n in (1, 10):
            start = time.perf_counter()
            result = self.manager.run_from_spec(
                input_text="x", spec_path=self.root / f"steps{n}.yaml"
            )
            timings[n].append(time.perf_counter() - start)
            assert result.status == "succeeded"

    def close(self) -> None:
        self.manager.store.close()


class KneoResume:
    """Pause the approval example in this process; resume it with ``kneo human resume``."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        from kneo.platform import create_platform
        from kneo.settings import Settings
        from kneo.spec.project import ProjectContext

        root.mkdir(parents=True, exist_ok=True)
        shutil.copytree(
            REPO / "examples",
            root / "examples",
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns("__pycache__"),
        )
        settings = Settings.from_env({"KNEO_SERV_SQLITE_SYNCHRONOUS": "full"})
        self.manager = create_platform(
            settings, ProjectContext.discover(cwd=root, settings=settings)
        )
        self.root, self.env = root, env

    def sample(self) -> tuple[float, float]:
        paused = self.manager.run_from_spec(
            input_text="draft the launch announcement",
            spec_path=self.root / "examples/human_approval_workflow.yaml",
        )
        wall, cpu, proc = timed(
            [
                sys.executable,
                "-m",
                "kneo.cli.main",
                "human",
                "resume",
                paused.continuation_id,
                "--request-id",
                paused.request_id or "",
                "--approve",
                "--json",
            ],
            cwd=self.root,
            env=self.env,
        )
        assert proc.returncode == 0 and json.loads(proc.stdout)["status"] == "succeeded", (
            proc.stderr
        )
        return wall, cpu


# --------------------------------------------------------------------------- langgraph

LG_STEPS = textwrap.dedent("""
    import sqlite3, sys, time
    from typing import TypedDict
    from langgraph.graph import StateGraph, START, END
    from langgraph.checkpoint.sqlite import SqliteSaver

    class S(TypedDict):
        text: str

    def build(n, db, synchronous="FULL"):
        g = StateGraph(S)
        names = [f"s{i}" for i in range(n)]
        for name in names:
            g.add_node(name, lambda s: {"text": s["text"] + "."})
        g.add_edge(START, names[0])
        for a, b in zip(names, names[1:]):
            g.add_edge(a, b)
        g.add_edge(names[-1], END)
        conn = sqlite3.connect(db, check_same_thread=False)
        conn.execute(f"PRAGMA synchronous = {synchronous}")  # FULL is sqlite3's default
        return g.compile(checkpointer=SqliteSaver(conn))
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


class LangGraphSteps:
    def __init__(self, root: Path, synchronous: str) -> None:
        namespace: dict[str, Any] = {}
        exec(LG_STEPS, namespace)
        root.mkdir(parents=True, exist_ok=True)
        db = str(root / f"lg_steps_{synchronous}.sqlite")
        self.graphs = {n: namespace["build"](n, db, synchronous.upper()) for n in (1, 10)}
        self.counter = 0
        for _ in range(3):
            self._invoke(10)

    def _invoke(self, n: int) -> None:
        self.counter += 1
        self.graphs[n].invoke({"text": "x"}, {"configurable": {"thread_id": f"t{self.counter}"}})

    def round(self, timings: Timings) -> None:
        for n in (1, 10):
            start = time.perf_counter()
            self._invoke(n)
            timings[n].append(time.perf_counter() - start)


class LangGraphResume:
    def __init__(self, root: Path, env: dict[str, str]) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.script = root / "lg_approval.py"
        self.script.write_text(LG_APPROVAL)
        self.db = str(root / "lg_approval.sqlite")
        self.env = env
        self.count = 0

    def sample(self) -> tuple[float, float]:
        self.count += 1
        thread = f"t{self.count}"
        subprocess.run(
            [sys.executable, str(self.script), self.db, thread, "start"],
            check=True,
            capture_output=True,
            env=self.env,
        )
        wall, cpu, proc = timed(
            [sys.executable, str(self.script), self.db, thread, "resume"], env=self.env
        )
        assert proc.returncode == 0, proc.stderr
        return wall, cpu


# --------------------------------------------------------------------------- main


def observed(runs: int) -> None:
    """Per-step overhead with metrics and tracing off and on, rounds interleaved in one
    process (on: the module switches set, off: cleared, as in a process that never enabled
    them)."""
    from kneo import metrics, tracing

    observe()
    on = (metrics._metrics, tracing._tracer)
    with tempfile.TemporaryDirectory() as tmp:
        kneo = KneoSteps(Path(tmp) / "kneo", "normal")
        off_t: Timings = {1: [], 10: []}
        on_t: Timings = {1: [], 10: []}
        for _ in range(runs):
            metrics._metrics, tracing._tracer = None, None
            kneo.round(off_t)
            metrics._metrics, tracing._tracer = on
            kneo.round(on_t)
        kneo.close()
    print(f"per-step overhead, SQLite WAL synchronous=NORMAL, median of {runs} interleaved rounds")
    print(_line("off", off_t))
    print(_line("observed", on_t))
    print(f"  observed - off {(per_step(on_t) - per_step(off_t)) * 1e6:+.0f} us/step")


def observe() -> None:
    """Metrics on, and tracing on with a real SDK pipeline minus the network."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    from kneo import metrics, tracing
    from kneo.settings import Settings

    class Drop(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Drop()))
    trace.set_tracer_provider(provider)
    metrics.enable()
    tracing.configure(Settings.from_env({"KNEO_SERV_OTEL_ENABLED": "true"}))


def _line(name: str, timings: Timings) -> str:
    return (
        f"  {name:<10}{per_step(timings) * 1000:7.2f} ms/step   (10-step run "
        f"{_median(timings[10]) * 1000:6.1f} ms, 1-step run {_median(timings[1]) * 1000:5.1f} ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="interleaved rounds per mode")
    parser.add_argument("--resumes", type=int, default=7)
    parser.add_argument(
        "--resume-only",
        action="store_true",
        help="skip the per-step rounds; measure only the resume",
    )
    parser.add_argument(
        "--observe",
        action="store_true",
        help="metrics and OpenTelemetry on (spans to a batch processor whose exporter "
        "drops them): the per-step cost of observing a run",
    )
    args = parser.parse_args()
    if args.observe:
        observed(args.runs)
        return
    have_lg = langgraph_available()
    if not have_lg:
        print("langgraph not installed (pip install -e '.[bench]'): Kneo numbers only")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for mode in () if args.resume_only else ("normal", "full"):
            kneo = KneoSteps(root / f"kneo_{mode}", mode)
            lg = LangGraphSteps(root / "lg", mode) if have_lg else None
            k_t: Timings = {1: [], 10: []}
            l_t: Timings = {1: [], 10: []}
            for _ in range(args.runs):
                kneo.round(k_t)
                if lg is not None:
                    lg.round(l_t)
            kneo.close()
            print(
                f"per-step overhead, SQLite WAL synchronous={mode.upper()} on both sides, "
                f"median of {args.runs} interleaved rounds"
            )
            print(_line("kneo", k_t))
            if lg is not None:
                print(_line("langgraph", l_t))
                print(
                    f"  ratio kneo/langgraph {per_step(k_t) / per_step(l_t):.2f}  (target <= 0.33)"
                )
        env = child_env(root / "pycache")
        k_resume = KneoResume(root / "kneo_resume", env)
        l_resume = LangGraphResume(root / "lg_resume", env) if have_lg else None
        k_resume.sample()  # warm-up: bytecode, SQLite file
        if l_resume is not None:
            l_resume.sample()
        k_s: list[tuple[float, float]] = []
        l_s: list[tuple[float, float]] = []
        for _ in range(args.resumes):
            k_s.append(k_resume.sample())
            if l_resume is not None:
                l_s.append(l_resume.sample())
        k_resume.manager.store.close()
        k_wall, k_cpu = _median([w for w, _ in k_s]), _median([c for _, c in k_s])
        print(f"resume in a fresh process, median of {args.resumes} interleaved (wall / CPU)")
        print(f"  kneo human resume  {k_wall * 1000:6.0f} ms / {k_cpu * 1000:5.0f} ms")
        if l_s:
            l_wall, l_cpu = _median([w for w, _ in l_s]), _median([c for _, c in l_s])
            print(f"  langgraph script   {l_wall * 1000:6.0f} ms / {l_cpu * 1000:5.0f} ms")
            print(
                f"  ratio kneo/langgraph wall {k_wall / l_wall:.2f}, CPU {k_cpu / l_cpu:.2f}"
                "  (target <= 0.50)"
            )


if __name__ == "__main__":
    main()
