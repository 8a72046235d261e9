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
    python bench/engine.py --budgets [--runs 100]   # agent steps: usage + budgets off vs on
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

    #: wall time; the agent-step rounds take this process's CPU time (``--budgets``)
    clock = staticmethod(time.perf_counter)

    def round(self, timings: Timings) -> None:
        for n in (1, 10):
            start = self.clock()
            result = self.manager.run_from_spec(
                input_text="x", spec_path=self.root / f"steps{n}.yaml"
            )
            timings[n].append(self.clock() - start)
            assert result.status == "succeeded"

    def close(self) -> None:
        self.manager.store.close()


KNEO_SCRIPT = textwrap.dedent("""
    import sys, time
    from kneo import Decision, create_platform

    manager = create_platform()  # the project in the working directory
    start = time.perf_counter()
    result = manager.resume(sys.argv[1], Decision(sys.argv[2], "approved"))
    call = time.perf_counter() - start
    assert result.status == "succeeded", result
    print(call)
""")


class KneoResume:
    """Pause the approval example in this process; resume it in a fresh process, with
    ``kneo human resume`` (``cli``) or with a Python script using the library (``script``,
    which also prints how long its first ``resume`` call took)."""

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

        (root / "resume_script.py").write_text(KNEO_SCRIPT)

    def sample(self, how: str = "cli") -> tuple[float, float, float]:
        """(wall, CPU, first resume call) of one fresh process; the call is NaN for the CLI."""
        paused = self.manager.run_from_spec(
            input_text="draft the launch announcement",
            spec_path=self.root / "examples/human_approval_workflow.yaml",
        )
        ids = [paused.continuation_id, paused.request_id or ""]
        if how == "script":
            cmd = [sys.executable, str(self.root / "resume_script.py"), *ids]
        else:
            cmd = [sys.executable, "-m", "kneo.cli.main", "human", "resume", ids[0]]
            cmd += ["--request-id", ids[1], "--approve", "--json"]
        wall, cpu, proc = timed(cmd, cwd=self.root, env=self.env)
        assert proc.returncode == 0, proc.stderr
        if how == "script":
            return wall, cpu, float(proc.stdout.split()[-1])
        assert json.loads(proc.stdout)["status"] == "succeeded", proc.stdout
        return wall, cpu, float("nan")


class KneoWarmResume:
    """Resumes in a warm process: runs paused at the approval step, each resumed to its end
    (the step after the pause and the outcome), timed one by one."""

    def __init__(self, root: Path) -> None:
        from kneo import Settings, create_platform
        from kneo.spec.project import ProjectContext

        root.mkdir(parents=True, exist_ok=True)
        shutil.copytree(
            REPO / "examples",
            root / "examples",
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns("__pycache__"),
        )
        self.spec = root / "examples/human_approval_workflow.yaml"
        settings = Settings.from_env({})  # Kneo's default durability (NORMAL)
        self.manager = create_platform(
            settings, ProjectContext.discover(cwd=root, settings=settings)
        )
        self.sample(3)  # warm-up: compile caches, the SQLite file

    def sample(self, n: int) -> list[float]:
        from kneo import Decision

        paused = [
            self.manager.run_from_spec(input_text="draft", spec_path=self.spec) for _ in range(n)
        ]
        samples = []
        for p in paused:
            start = time.perf_counter()
            done = self.manager.resume(p.continuation_id, Decision(p.request_id or "", "approved"))
            samples.append(time.perf_counter() - start)
            assert done.status == "succeeded", done
        return samples


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
    import hashlib, sqlite3, sys, time
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
            start = time.perf_counter()
            out = graph.invoke(Command(resume="approved"), config)
            call = time.perf_counter() - start
            assert out["text"].startswith("Published."), out
            print(call)
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

    def sample(self) -> tuple[float, float, float]:
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
        return wall, cpu, float(proc.stdout.split()[-1])


class LangGraphWarmResume:
    """LangGraph's side of :class:`KneoWarmResume`: the same three nodes, its SqliteSaver with
    its default connection (``synchronous=FULL``), threads paused then resumed one by one."""

    def __init__(self, root: Path) -> None:
        namespace: dict[str, Any] = {"__name__": "lg_approval"}
        exec(LG_APPROVAL, namespace)
        root.mkdir(parents=True, exist_ok=True)
        self.graph = namespace["build"](str(root / "lg_warm.sqlite"))
        self.command = namespace["Command"]
        self.count = 0
        self.sample(3)

    def sample(self, n: int) -> list[float]:
        configs = []
        for _ in range(n):
            self.count += 1
            config = {"configurable": {"thread_id": f"w{self.count}"}}
            self.graph.invoke({"text": "draft"}, config)
            configs.append(config)
        samples = []
        for config in configs:
            start = time.perf_counter()
            out = self.graph.invoke(self.command(resume="approved"), config)
            samples.append(time.perf_counter() - start)
            assert out["text"].startswith("Published."), out
        return samples


# --------------------------------------------------------------------------- budgets

TOOL_MODULE = "def echo(args):\n    return str(args.get('text'))\n"


class AgentSteps(KneoSteps):
    """1- and 10-step workflows of agent steps (``dummy`` provider: a tool call, then the
    answer, so each step is two model calls and one tool call), in a project whose
    ``environments/dev.yaml`` sets ``budgets`` (limits never reached) or none. Timed in this
    process's CPU time: on a shared machine wall time moved +-10 % between two identical
    setups, more than the difference measured."""

    clock = staticmethod(time.process_time)

    def __init__(self, root: Path, *, budgets: bool) -> None:
        from kneo.platform import create_platform
        from kneo.settings import Settings
        from kneo.spec.project import ProjectContext

        root.mkdir(parents=True, exist_ok=True)
        (root / "benchtools.py").write_text(TOOL_MODULE)
        sys.path.insert(0, str(root))
        if budgets:
            (root / "environments").mkdir(exist_ok=True)
            limits = {"max_model_calls": 10**6, "max_tool_calls": 10**6, "max_tokens": 10**9}
            (root / "environments" / "dev.yaml").write_text(
                json.dumps({"version": "v1", "budgets": limits})
            )
        agent = {
            "name": "bench",
            "system_prompt": "Echo.",
            "tools": ["echo"],
            "policies": {"tool": {"allow": ["echo"]}},
            "model": {
                "provider": "dummy",
                "name": "bench",
                "script": [
                    {"tool_calls": [{"name": "echo", "arguments": {"text": "{input}"}}]},
                    {"text": "echoed {last_tool_result}"},
                ],
            },
        }
        tool = {
            "description": "Echo.",
            "implementation": "benchtools:echo",
            "parameters": {"type": "object", "properties": {"text": {"type": "string"}}},
        }
        for n in (1, 10):
            spec = {
                "version": "v1",
                "agent": agent,
                "workflow": {
                    "type": "sequential",
                    "name": f"a{n}",
                    "steps": [{"id": f"s{i}", "kind": "agent", "ref": "bench"} for i in range(n)],
                },
                "components": {"tools": {"echo": tool}},
            }
            (root / f"steps{n}.yaml").write_text(json.dumps(spec))
        settings = Settings.from_env({"KNEO_SERV_SQLITE_SYNCHRONOUS": "normal"})
        self.root = root
        self.manager = create_platform(
            settings, ProjectContext.discover(cwd=root, settings=settings)
        )
        for _ in range(3):
            self.manager.run_from_spec(input_text="x", spec_path=root / "steps10.yaml")


def budgeted(runs: int) -> None:
    """Per agent step: usage recording and budgets off (``count_spent`` a no-op, no
    ``budgets:``) against on (counted, and limits checked before every model and tool
    call), rounds interleaved in one process."""
    from kneo.engine import agent

    counting = agent.count_spent

    def nothing(record: dict[str, Any], usage: Any) -> None:
        return None

    with tempfile.TemporaryDirectory() as tmp:
        off = AgentSteps(Path(tmp) / "off", budgets=False)
        on = AgentSteps(Path(tmp) / "on", budgets=True)
        off_t: Timings = {1: [], 10: []}
        on_t: Timings = {1: [], 10: []}
        for i in range(runs):  # alternate which goes first: a load spike hits both
            for mode in ("off", "on") if i % 2 else ("on", "off"):
                agent.count_spent = nothing if mode == "off" else counting  # type: ignore[assignment]
                (off if mode == "off" else on).round(off_t if mode == "off" else on_t)
        agent.count_spent = counting
        off.close()
        on.close()
    print(
        "per agent step (2 model calls, 1 tool call), CPU time, SQLite WAL "
        f"synchronous=NORMAL, median of {runs} interleaved rounds"
    )
    print(_line("off", off_t))
    print(_line("budgets", on_t))
    ratio = per_step(on_t) / per_step(off_t)
    print(
        f"  on - off {(per_step(on_t) - per_step(off_t)) * 1e6:+.0f} us/step, "
        f"ratio {ratio:.3f} (target < 1.05)"
    )


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
    parser.add_argument(
        "--budgets",
        action="store_true",
        help="agent steps with usage recording and budgets off vs on: the per-step cost",
    )
    args = parser.parse_args()
    if args.budgets:
        budgeted(args.runs)
        return
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
        resumes(root, args.resumes, have_lg)


def resumes(root: Path, rounds: int, have_lg: bool) -> None:
    """The resume rows: warm in-process, the first call in a fresh process, and the whole
    fresh process (the CLI and a library script), Kneo and LangGraph interleaved."""
    k_warm = KneoWarmResume(root / "kneo_warm")
    l_warm = LangGraphWarmResume(root / "lg_warm") if have_lg else None
    kw: list[float] = []
    lw: list[float] = []
    for _ in range(rounds):
        kw += k_warm.sample(20)
        if l_warm is not None:
            lw += l_warm.sample(20)
    k_warm.manager.store.close()
    print(f"warm resume in-process, median of {len(kw)} (Kneo NORMAL, LangGraph its FULL)")
    line = f"  kneo {_median(kw) * 1000:6.2f} ms"
    if lw:
        line += f"   langgraph {_median(lw) * 1000:6.2f} ms   ratio {_median(kw) / _median(lw):.2f}"
        line += "  (target kneo <= 1.0 ms, ratio <= 0.4)"
    print(line)
    env = child_env(root / "pycache")
    k_resume = KneoResume(root / "kneo_resume", env)
    l_resume = LangGraphResume(root / "lg_resume", env) if have_lg else None
    k_resume.sample()  # warm-up: bytecode, SQLite file
    k_resume.sample("script")
    if l_resume is not None:
        l_resume.sample()
    cli: list[tuple[float, float, float]] = []
    script: list[tuple[float, float, float]] = []
    lg: list[tuple[float, float, float]] = []
    for _ in range(rounds):
        cli.append(k_resume.sample())
        script.append(k_resume.sample("script"))
        if l_resume is not None:
            lg.append(l_resume.sample())
    k_resume.manager.store.close()

    def col(samples: list[tuple[float, float, float]], i: int) -> float:
        return _median([s[i] for s in samples])

    print(f"resume in a fresh process, median of {rounds} interleaved (SQLite FULL on both sides)")
    print("                       wall      CPU   first resume call")
    print(f"  kneo human resume {col(cli, 0) * 1000:6.0f} ms {col(cli, 1) * 1000:5.0f} ms")
    print(
        f"  kneo script       {col(script, 0) * 1000:6.0f} ms {col(script, 1) * 1000:5.0f} ms"
        f" {col(script, 2) * 1000:8.2f} ms"
    )
    if lg:
        print(
            f"  langgraph script  {col(lg, 0) * 1000:6.0f} ms {col(lg, 1) * 1000:5.0f} ms"
            f" {col(lg, 2) * 1000:8.2f} ms"
        )
        print(
            f"  ratios kneo/langgraph: CLI wall {col(cli, 0) / col(lg, 0):.2f} (target <= 0.50),"
            f" script wall {col(script, 0) / col(lg, 0):.2f} (target <= 0.45),"
            f" first call {col(script, 2) / col(lg, 2):.2f} (target kneo <= 5 ms)"
        )


if __name__ == "__main__":
    main()
