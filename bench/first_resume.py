"""A fresh process's first resume call (issue 73 item 4): its instructions, its CPU time
against LangGraph's, and what it imports.

For each checkout: a SQLite project with the approval example paused a few times, then one
fresh process (bytecode cached, ``PYTHONHASHSEED=0``) that imports Kneo, calls
``create_platform`` and resumes one paused run, under callgrind counting inside that first
``resume`` call alone (``operator.call``); the process also prints the modules the call
imported (``sys.modules`` before and after: a module imported lazily by the first call shows
here, as in ``python -X importtime``) and the CPU time of a second resume.

``--cpu N`` instead times the first call in N fresh processes without callgrind: its CPU time
(``time.process_time``, every thread of the process) and wall time, medians, for each checkout
and for LangGraph (``--langgraph``: its approval graph of ``bench/peers_sides.py`` over
``SqliteSaver``, the graph built and the saver opened before the call, as Kneo's platform is).
Instructions are not compared with LangGraph's: its nodes and its checkpoint writes run on
other threads, which callgrind's count inside the call leaves out.

    python bench/first_resume.py CHECKOUT [CHECKOUT ...]
    python bench/first_resume.py --cpu 9 CHECKOUT [...] [--langgraph]

``--langgraph`` needs a Python with ``langgraph-checkpoint-sqlite`` (a benchmark-only
environment); callgrind needs ``valgrind``. Not part of the test run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[1]))

from bench.peers_sides import LG_GRAPH

MAKE = """
import json, sys
from pathlib import Path
from kneo.platform import create_platform
from kneo.settings import Settings
from kneo.spec.project import ProjectContext
settings = Settings.from_env()
m = create_platform(settings=settings, project=ProjectContext.discover(cwd=Path.cwd(), settings=settings))
paused = [m.run_from_spec(input_text="launch", spec_path="examples/hitl_approval.yaml")
          for _ in range(3)]
Path("ids.json").write_text(json.dumps([[p.continuation_id, p.request_id] for p in paused]))
m.store.close()
"""
FRESH = """
import json, operator, sys, time
from pathlib import Path
from kneo import Decision
from kneo.platform import create_platform
from kneo.settings import Settings
from kneo.spec.project import ProjectContext
settings = Settings.from_env()
m = create_platform(settings=settings, project=ProjectContext.discover(cwd=Path.cwd(), settings=settings))
ids = json.loads(Path("ids.json").read_text())
before, cpu, wall = set(sys.modules), time.process_time(), time.perf_counter()
operator.call(m.resume, ids[0][0], Decision(ids[0][1], "approved"))
first = {"first_cpu_ms": (time.process_time() - cpu) * 1000,
         "first_ms": (time.perf_counter() - wall) * 1000}
imported = sorted(n for n in set(sys.modules) - before if not n.startswith("_kneo_code_"))
start = time.process_time()
m.resume(ids[1][0], Decision(ids[1][1], "approved"))
print(json.dumps({**first, "imported": imported, "second_ms": (time.process_time() - start) * 1000}))
"""


LG_MAKE = (
    LG_GRAPH
    + """
import json, sys, uuid
from pathlib import Path
graph = approval_graph(saver(sys.argv[1]))
ids = [uuid.uuid4().hex for _ in range(3)]
for thread in ids:
    graph.invoke({"text": "launch"}, {"configurable": {"thread_id": thread}})
Path("ids.json").write_text(json.dumps(ids))
"""
)
LG_FRESH = (
    LG_GRAPH
    + """
import json, operator, sys, time
from pathlib import Path
graph = approval_graph(saver(sys.argv[1]))
ids = json.loads(Path("ids.json").read_text())
before, cpu, wall = set(sys.modules), time.process_time(), time.perf_counter()
out = operator.call(graph.invoke, Command(resume="approved"), {"configurable": {"thread_id": ids[0]}})
first = {"first_cpu_ms": (time.process_time() - cpu) * 1000,
         "first_ms": (time.perf_counter() - wall) * 1000}
assert out["text"].startswith("Published."), out
imported = sorted(set(sys.modules) - before)
start = time.process_time()
graph.invoke(Command(resume="approved"), {"configurable": {"thread_id": ids[1]}})
print(json.dumps({**first, "imported": imported, "second_ms": (time.process_time() - start) * 1000}))
"""
)


def counted(fresh: list[str], root: Path, env: dict[str, str]) -> tuple[int, str]:
    """Instructions inside ``operator.call`` of the fresh process ``fresh``, and its output."""
    only = ["--collect-atstart=no", "--toggle-collect=_operator_call"]
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={root}/cg", *only, *fresh],
        cwd=root, env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise RuntimeError(done.stderr[-500:])
    return int(found.group(1)), done.stdout.strip()


def timed(fresh: list[str], root: Path, env: dict[str, str]) -> tuple[int, str]:
    """The fresh process ``fresh`` run as it is (no instructions counted), and its output."""
    done = subprocess.run(fresh, cwd=root, env=env, check=True, capture_output=True, text=True)
    return 0, done.stdout.strip()


def side(name: str, root: Path, *, count: bool) -> tuple[int, str]:
    """Pause three runs of ``name`` (a checkout's Kneo, or ``--langgraph``) under ``root``,
    then resume one in a fresh process: counted under callgrind, or only timed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KNEO")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(PYTHONHASHSEED="0")
    run = counted if count else timed
    if name == "--langgraph":
        url = f"sqlite:///{root}/lg.sqlite"
        subprocess.run([sys.executable, "-c", LG_MAKE, url], cwd=root, env=env, check=True)
        return run([sys.executable, "-c", LG_FRESH, url], root, env)
    checkout = Path(name).resolve()
    (root / ".kneo").mkdir()
    shutil.copytree(
        checkout / "examples",
        root / "examples",
        ignore=shutil.ignore_patterns("__pycache__", "keys"),
    )
    env.update(
        PYTHONPATH=os.pathsep.join([str(root), str(checkout)]),
        KNEO_SERV_DATABASE_URL=f"sqlite:///{root}/.kneo/kneo.db",
        KNEO_SERV_LOG_LEVEL="WARNING",
    )
    subprocess.run([sys.executable, "-c", MAKE], cwd=root, env=env, check=True)
    return run([sys.executable, "-c", FRESH], root, env)


def main() -> None:
    args = sys.argv[1:]
    rounds = int(args.pop(args.index("--cpu") + 1)) if "--cpu" in args else 0
    names = [a for a in args if a != "--cpu"]
    if not rounds:
        for name in names:
            with tempfile.TemporaryDirectory() as tmp:
                found, printed = side(name, Path(tmp), count=True)
            print(f"{name}: first resume {found / 1e6:,.1f} M instructions; {printed}", flush=True)
        return
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    for _ in range(rounds):  # the sides take turns, so a load spike hits each of them
        for name in names:
            with tempfile.TemporaryDirectory() as tmp:
                samples[name].append(json.loads(side(name, Path(tmp), count=False)[1]))
    for name, got in samples.items():
        cpu = statistics.median(g["first_cpu_ms"] for g in got)
        wall = statistics.median(g["first_ms"] for g in got)
        print(f"{name}: first resume CPU {cpu:.1f} ms, wall {wall:.1f} ms (median of {rounds})")


if __name__ == "__main__":
    main()
