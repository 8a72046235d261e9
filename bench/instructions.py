"""Instructions against another checkout (callgrind): a number the machine's load does not move.

CPU time on a shared 2-core machine moves by +-30 % between identical runs, more than the
differences issue 35's budgets are about. Valgrind's callgrind counts the instructions a
process executes instead (user space only: system calls and cache misses are not in it), the
same from run to run within ~0.1 %. Each figure is a difference of two processes, so start-up
cancels out:

* ``drain``: one ``kneo worker --once`` (metrics on, as a worker runs) draining 220 queued
  3-step function runs minus one draining 20, on a scratch PostgreSQL database: per run.
* ``post``: sync ``POST /v1/runs`` (auth on, a 3-step function spec by ``spec_path``) sent
  straight to the ASGI app in one process, 450 minus 50 requests, SQLite: per request (the
  collector's full collections fall unevenly: 200 requests moved it by up to 0.05 M).
  ``post-pg``: the same on a scratch PostgreSQL database (the service's instructions only:
  the server's are not counted).
* ``import``: ``import kneo; from kneo.platform import create_platform`` (bytecode cached).
* ``setup``: ``create_platform()`` on an existing SQLite database, counted inside the call.
* ``step``: per step, 30 ten-step function runs minus 30 one-step ones (SQLite, ``normal``);
  ``pause``: per pause, 40 runs of the approval example to its human step; ``resume``: per
  warm resume of 40 such paused runs to their end. After 30 warm-up runs and an emptied
  WAL, counted inside the loop alone. ``pause-pg``, ``resume-pg``: the same on a scratch
  PostgreSQL database (this process's instructions only: the server's are not counted).
* ``reconcile-noop`` / ``reconcile-one``: per pass of the GitOps controller over 1,000
  signed bundles (``bench/scale_reconcile.py``'s repository, SQLite), the same commit again /
  after a commit changing one bundle, 10 passes counted inside each call alone (the Git
  commands it starts are other processes, not counted), after a cold pass and two warm-up
  passes of the same controller.

    python bench/instructions.py --baseline /path/to/other/checkout [--pairs N]
        [--what drain post post-pg import setup step pause pause-pg resume resume-pg
                reconcile-noop reconcile-one]
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

``--pairs N`` measures each side N times in turn and prints the median of the pairs' ratios:
one pair of the same code moves by up to ~4 % (the GC, temporary paths), so a budget of a few
percent wants three or more. Needs ``valgrind``; each side runs with ``PYTHONPATH`` at its checkout and this venv's
Python. About a minute per process. Not part of the test run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.append(str(REPO))  # bench.* (appended: the kneo measured stays the same)

from bench.queue_drain import SPEC, STEPS  # noqa: E402
from bench.scratch_db import scratch_database  # noqa: E402

QUEUE = """
import sys
from pathlib import Path
from kneo.platform import create_platform
from kneo.settings import Settings
from kneo.spec.project import ProjectContext
settings = Settings.from_env()
root = Path.cwd()
manager = create_platform(settings=settings, project=ProjectContext.discover(cwd=root, settings=settings))
for i in range(int(sys.argv[1])):
    manager.start_run_from_spec(input_text=f"r{i}", spec_path=root / "bench.yaml")
manager.store.close()
"""

POST = """
import asyncio, json, os, sys
from pathlib import Path
from kneo.service.app import create_app
from kneo.settings import Settings
n, root = int(sys.argv[1]), Path.cwd()
app = create_app(settings=Settings.from_env(), start_worker=False)
body = json.dumps({"input": "benchmark", "spec_path": str(root / "bench.yaml"), "target": "workflow"}).encode()
headers = [(b"host", b"bench"), (b"content-type", b"application/json"),
           (b"authorization", ("Bearer " + os.environ["BENCH_TOKEN"]).encode()),
           (b"content-length", str(len(body)).encode())]
async def one():
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": "/v1/runs", "raw_path": b"/v1/runs", "query_string": b"",
             "root_path": "", "headers": headers, "client": ("127.0.0.1", 5000),
             "server": ("127.0.0.1", 8000), "state": {}}
    sent, status = [], []
    async def receive():
        if not sent:
            sent.append(1)
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)
    async def send(message):
        if message["type"] == "http.response.start":
            status.append(message["status"])
    await app(scope, receive, send)
    assert status == [200], status
async def main():
    async with app.router.lifespan_context(app):
        for _ in range(20 + n):
            await one()
asyncio.run(main())
"""

#: ``step``/``pause``/``resume``: a platform in the working directory warmed up, its WAL
#: emptied (a frame costs more the further into the WAL it goes), then ``sys.argv[2]`` runs
#: of the spec ``sys.argv[1]`` (or, ``sys.argv[4]`` ``resume``, resumes of as many paused
#: runs) counted inside ``operator.call`` alone.
RUNS = """
import functools, gc, operator, sqlite3, sys
from pathlib import Path
from kneo import Decision
from kneo.platform import create_platform
from kneo.settings import Settings
from kneo.spec.project import ProjectContext
spec, n, text, resume = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4] == "resume"
settings = Settings.from_env()
m = create_platform(settings=settings, project=ProjectContext.discover(cwd=Path.cwd(), settings=settings))
def resumed(paused):
    for p in paused:
        m.resume(p.continuation_id, Decision(p.request_id, "approved"))
for _ in range(30):
    run = m.run_from_spec(input_text=text, spec_path=spec)
    if resume:
        resumed([run])
if settings.database_url.startswith("sqlite"):
    db = sqlite3.connect(Path.cwd() / ".kneo" / "kneo.db")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
paused = [m.run_from_spec(input_text=text, spec_path=spec) for _ in range(n if resume else 0)]
gc.collect()
gc.freeze()
def runs():
    for _ in range(n):
        m.run_from_spec(input_text=text, spec_path=spec)
operator.call(functools.partial(resumed, paused) if resume else runs)
"""
#: ``reconcile-*``: a repository of ``sys.argv[2]`` bundles built under ``sys.argv[1]`` and
#: reconciled cold (``setup``), or ``sys.argv[4]`` passes counted (``noop`` or ``one``).
RECONCILE = """
import operator, runpy, sys
from pathlib import Path
from kneo.bundle import load_keyring, load_signing_key
from kneo.controller.config import ControllerConfig
from kneo.controller.controller import Controller
from kneo.controller.source import GitSource
from kneo.store import open_store
root, count, kind = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
bench = runpy.run_path(sys.argv[5], run_name="scale_reconcile")
if kind == "setup":
    bench["build"](root, count)
store = open_store(f"sqlite:///{root / 'kneo.sqlite'}")
remote = (root / "remote.git").as_uri()
config = ControllerConfig(repo=remote, cache_dir=root / "cache")
ctl = Controller(store, GitSource(remote, ref="main", cache_dir=config.cache_dir),
                 load_keyring(root / "trusted"), config=config)
def leading():
    result = ctl.reconcile_once()
    assert result.ok and result.leader, result.to_dict()
    return result
for _ in range(3 if kind == "setup" else 2):
    leading()
key = load_signing_key(root / "keys" / "ci.key")
for i in range(0 if kind == "setup" else int(sys.argv[4])):
    if kind == "one":
        bench["write_bundle"](root / "work", key, i, version=100 + i)
        bench["git"](root / "work", "commit", "--quiet", "-am", f"one {i}")
        bench["git"](root / "work", "push", "--quiet", remote, "HEAD:main")
    operator.call(leading)
ctl.step_down()  # the next process leads at once
store.close()
"""
IMPORT = "import kneo\nfrom kneo.platform import create_platform\n"
TOKEN = "bench-instructions-0123456789abcdef"
EXAMPLES_SKIP = shutil.ignore_patterns("__pycache__", "keys")


def child_env(checkout: Path, project: Path, **extra: str) -> dict[str, str]:
    """A measured process's environment: ``checkout``'s kneo and ``project`` on its path, no
    ``KNEO_*`` of this shell's, bytecode cached, ``extra`` set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KNEO")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # bytecode cached, as in a deployment
    env.update(PYTHONPATH=os.pathsep.join([str(project), str(checkout)]), PYTHONHASHSEED="0")
    env.update(KNEO_SERV_LOG_LEVEL="WARNING", **extra)
    return env


def callgrind(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    """Instructions ``args`` executed, by callgrind, and what it printed (``args`` may start
    with callgrind's own options)."""
    with tempfile.TemporaryDirectory() as out:
        done = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}/cg", *args],
            cwd=cwd, env=env, check=True, capture_output=True, text=True,
        )  # fmt: skip
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise RuntimeError(f"callgrind printed no count: {done.stderr[-500:]}")
    return int(found.group(1)), done.stdout


def _counted(args: list[str], cwd: Path, env: dict[str, str]) -> int:
    """:func:`callgrind`'s count, after one plain run writes bytecode."""
    subprocess.run(args, cwd=cwd, env=env, check=True, capture_output=True)
    return callgrind(args, cwd, env)[0]


def _project(root: Path) -> Path:
    (root / ".kneo").mkdir(parents=True)
    (root / "benchsteps.py").write_text(STEPS)
    (root / "bench.yaml").write_text(json.dumps(SPEC))
    return root


def drain(checkout: Path, server: str, small: int = 20, large: int = 220) -> float:
    counts = []
    for runs in (small, large):
        with tempfile.TemporaryDirectory() as tmp, scratch_database(server, "instr") as url:
            project = _project(Path(tmp))
            env = child_env(checkout, project, KNEO_SERV_DATABASE_URL=url)
            env["KNEO_SERV_WORKER_LEASE_SECONDS"] = "60"
            python = [sys.executable, "-c", QUEUE, str(runs)]
            subprocess.run(python, cwd=project, env=env, check=True, capture_output=True)
            worker = [sys.executable, "-m", "kneo.cli.main", "worker", "--once"]
            count, printed = callgrind(worker, project, env)  # no plain run: it would drain
            if f"processed {runs} " not in printed:
                raise RuntimeError(f"the worker did not drain {runs} runs: {printed}")
            counts.append(count)
    return (counts[1] - counts[0]) / (large - small)


def post(checkout: Path, server: str | None = None, small: int = 50, large: int = 450) -> float:
    """Per request, on SQLite, or on a scratch database of the PostgreSQL ``server``."""
    counts = []
    for requests in (small, large):
        with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
            project = _project(Path(tmp))
            url = f"sqlite:///{project}/.kneo/kneo.db"
            if server is not None:
                url = stack.enter_context(scratch_database(server, "instr"))
            env = child_env(
                checkout,
                project,
                KNEO_SERV_DATABASE_URL=url,
                KNEO_SERV_AUTH_ENABLED="true",
                KNEO_SERV_API_KEYS=f"bench:{TOKEN}:operator",
                KNEO_SERV_SPEC_ROOTS=str(project),
                BENCH_TOKEN=TOKEN,
            )
            counts.append(_counted([sys.executable, "-c", POST, str(requests)], project, env))
    return (counts[1] - counts[0]) / (large - small)


def imports(checkout: Path) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        return float(
            _counted([sys.executable, "-c", IMPORT], Path(tmp), child_env(checkout, Path(tmp)))
        )


def setup(checkout: Path) -> float:
    """``create_platform()`` on an existing SQLite database (made, and closed, by a first
    run), from ``KNEO_SERV_DATABASE_URL`` and the project in the working directory. Counted
    inside the call alone: it runs through ``operator.call``, a C function nothing else here
    calls, and callgrind collects only within it (a difference of two whole processes moved
    by +-1 M from run to run, the interpreter's teardown being uneven)."""
    with tempfile.TemporaryDirectory() as tmp:
        project = _project(Path(tmp))
        env = child_env(
            checkout, project, KNEO_SERV_DATABASE_URL=f"sqlite:///{project}/.kneo/kneo.db"
        )
        made = IMPORT + "create_platform().store.close()\n"  # (f5c5558's manager has no close)
        subprocess.run([sys.executable, "-c", made], cwd=project, env=env, check=True)
        args = [sys.executable, "-c", IMPORT + "import operator\noperator.call(create_platform)\n"]
        subprocess.run(args, cwd=project, env=env, check=True, capture_output=True)
        only = ["--collect-atstart=no", "--toggle-collect=_operator_call"]
        return float(callgrind([*only, *args], project, env)[0])


def _runs(
    checkout: Path,
    spec: dict[str, object] | Path,
    runs: int,
    text: str,
    server: str | None = None,
    what: str = "runs",
) -> int:
    """Instructions of ``runs`` runs of ``spec`` (a spec, or the example at that path under
    ``checkout``; ``what`` ``resume``: resumes of as many of its paused runs) after a
    warm-up, on SQLite (``normal``) or a scratch database of the PostgreSQL ``server``,
    counted inside the loop alone."""
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        project = _project(Path(tmp))
        url = f"sqlite:///{project}/.kneo/kneo.db"
        if server is not None:
            url = stack.enter_context(scratch_database(server, "instr"))
        path = project / "runs.yaml"
        if isinstance(spec, Path):
            shutil.copytree(checkout / "examples", project / "examples", ignore=EXAMPLES_SKIP)
            path = project / spec
        else:
            path.write_text(json.dumps(spec))
        env = child_env(
            checkout, project, KNEO_SERV_DATABASE_URL=url,
            KNEO_SERV_WORKER_LEASE_SECONDS="3600",  # no renewal fired by valgrind's slowness
        )  # fmt: skip
        args = [sys.executable, "-c", RUNS, str(path), str(runs), text, what]
        only = ["--collect-atstart=no", "--toggle-collect=_operator_call"]
        return callgrind([*only, *args], project, env)[0]


def _steps(count: int) -> dict[str, object]:
    steps = [{"id": f"s{i}", "kind": "function", "ref": "benchsteps:a"} for i in range(count)]
    return {
        "version": "v1",
        "workflow": {"type": "sequential", "name": f"s{count}", "steps": steps},
    }


def step(checkout: Path, runs: int = 30) -> float:
    """Per step: ``runs`` 10-step function runs minus ``runs`` 1-step ones, over 9 steps each."""
    ten, one = (_runs(checkout, _steps(n), runs, "x") for n in (10, 1))
    return (ten - one) / (9 * runs)


def pause(checkout: Path, server: str | None = None, what: str = "runs", runs: int = 40) -> float:
    """Per pause: ``examples/hitl_approval.yaml`` run to its approval step (``what``
    ``resume``: per warm resume of such a paused run to its end)."""
    example = Path("examples/hitl_approval.yaml")
    return _runs(checkout, example, runs, "launch", server, what) / runs


def reconcile(checkout: Path, kind: str, passes: int = 10, bundles: int = 1000) -> float:
    """Per controller pass at ``bundles`` bundles: ``noop`` (the same commit) or ``one`` (a
    commit changing one bundle before each pass); see the module."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env = child_env(checkout, root)
        script = str(REPO / "bench" / "scale_reconcile.py")
        setup = [sys.executable, "-c", RECONCILE, str(root), str(bundles), "setup", "0", script]
        subprocess.run(setup, cwd=root, env=env, check=True, capture_output=True)
        args = [sys.executable, "-c", RECONCILE, str(root), str(bundles), kind, str(passes)]
        only = ["--collect-atstart=no", "--toggle-collect=_operator_call"]
        return callgrind([*only, *args, script], root, env)[0] / passes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True, help="the other checkout")
    every = ["drain", "post", "post-pg", "import", "setup", "step", "pause", "pause-pg"]
    every += ["resume", "resume-pg"]
    every += ["reconcile-noop", "reconcile-one"]
    parser.add_argument("--what", nargs="+", choices=every, default=every)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("KNEO_TEST_DATABASE_URL")
        or "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
    )
    parser.add_argument(
        "--pairs",
        type=int,
        default=1,
        help="measure each side this many times, in turn, and print the median of the pairs' "
        "ratios (one run moves by up to ~4 %%: a budget of a few percent needs 3 or more)",
    )
    args = parser.parse_args()
    measures = {
        "drain": ("per queued run, PostgreSQL", lambda c: drain(c, args.database_url)),
        "post": ("per POST /v1/runs, SQLite", post),
        "post-pg": ("per POST /v1/runs, PostgreSQL", lambda c: post(c, args.database_url)),
        "import": ("import to create_platform", imports),
        "setup": ("create_platform() on an existing SQLite file", setup),
        "step": ("per step of a function run, SQLite", step),
        "pause": ("per pause (approval example), SQLite", pause),
        "pause-pg": ("per pause, PostgreSQL", lambda c: pause(c, args.database_url)),
        "resume": ("per warm resume, SQLite", lambda c: pause(c, what="resume")),
        "resume-pg": (
            "per warm resume, PostgreSQL",
            lambda c: pause(c, args.database_url, "resume"),
        ),
        "reconcile-noop": (
            "per no-op controller pass, 1,000 bundles, SQLite",
            lambda c: reconcile(c, "noop"),
        ),
        "reconcile-one": (
            "per one-bundle controller pass, 1,000 bundles, SQLite",
            lambda c: reconcile(c, "one"),
        ),
    }
    for what in args.what:
        label, measure = measures[what]
        pairs = [(measure(REPO), measure(args.baseline.resolve())) for _ in range(args.pairs)]
        mine, theirs = pairs[0]
        line = (
            f"{mine / 1e6:,.3f} M instructions against {theirs / 1e6:,.3f} M ({mine / theirs:.3f}x)"
        )
        if len(pairs) > 1:
            ratios = [m / t for m, t in pairs]
            listed = ", ".join(f"{r:.3f}x" for r in ratios)
            line = f"median of {len(pairs)} pairs {statistics.median(ratios):.3f}x ({listed})"
        print(f"{what:7s} {label}: {line}", flush=True)


if __name__ == "__main__":
    main()
