"""Kneo against LangGraph and DBOS on one database, same run: a 10-step run, a pause, a warm
resume, a fresh process's import + set-up + first resume, and bytes per paused run.

    python bench/peers.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres
        [--rounds 8] [--inner 10] [--fresh 5] [--paused 500] [--sides kneo langgraph dbos]
    python bench/peers.py --sqlite [...]       # the same on SQLite files (no DBOS)

Each side is a child process over its own scratch database (PostgreSQL) or file (SQLite),
warmed up, then asked for ``--inner`` operations of each kind per round, the sides taking
turns which goes first, so a load spike hits all of them: medians of wall time and the
ratios Kneo / peer. The peers run as their documentation sets them up, at their default
durability: LangGraph's ``PostgresSaver`` (autocommit connection, ``durability="async"``)
or ``SqliteSaver``; DBOS Transact with its system database there. Kneo runs at its default
(SQLite: WAL, ``synchronous=NORMAL``; PostgreSQL: ``synchronous_commit`` as the server has
it). The peers must be importable by this Python: install them in a benchmark-only
environment (``pip install langgraph langgraph-checkpoint-postgres
langgraph-checkpoint-sqlite dbos``), never as Kneo's dependencies.

* ``run10``: 10 sequential function steps (each appends a character), start to outcome;
* ``pause``: draft -> approval: start until the pause is durable (DBOS: until the draft
  step is recorded and the workflow is about to wait for its message, which favours it);
* ``resume``: a paused run resumed in the same process to its end (the publish step);
* ``fresh``: a new interpreter's import, set-up and first resume, timed inside it from its
  first line (and its wall time from outside); the row ``kneo deps`` times a fresh process
  that only imports what Kneo cannot start without (SQLAlchemy and the URL's dialect,
  psycopg, pydantic) and builds one model: the floor under Kneo's figure;
* ``bytes``: table, index and TOAST bytes (PostgreSQL) or the file (SQLite, after a WAL
  checkpoint) grown by ``--paused`` more paused runs, per run;
* ``live`` (PostgreSQL, ``--only ... live``): the same after ``VACUUM FULL`` before and after,
  so the row versions an update left dead (which a vacuum makes reusable) are not counted.

Not part of the test run.
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
from contextlib import ExitStack
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.append(str(REPO))

from bench.peers_sides import DEPS_FRESH, SIDES  # noqa: E402
from bench.scratch_db import scratch_database  # noqa: E402

KINDS = ("run10", "pause", "resume")


class Side:
    """One side's child process: answers ``run10|pause|resume N`` with wall samples,
    ``paused`` with the ids of a paused run, ``bytes N`` with bytes per paused run."""

    def __init__(self, name: str, url: str, root: Path, checkout: Path = REPO) -> None:
        self.name, self.url, self.root = name, url, root
        kind = "kneo" if name == "base" else name
        root.mkdir(parents=True, exist_ok=True)
        (root / "child.py").write_text(SIDES[kind]["child"])
        (root / "fresh.py").write_text(SIDES[kind]["fresh"])
        (root / "deps.py").write_text(DEPS_FRESH)
        if kind == "kneo":
            (root / "examples").mkdir(exist_ok=True)
            for part in ("hitl_approval.yaml", "hitl_functions.py", "hitl_counter.py"):
                (root / "examples" / part).write_bytes((REPO / "examples" / part).read_bytes())
            (root / "examples" / "__init__.py").write_text("")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("KNEO")}
        self.env.update(PYTHONPATH=os.pathsep.join([str(root), str(checkout)]))
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.env["PYTHONPYCACHEPREFIX"] = str(root.parent / "pycache")
        self.proc = subprocess.Popen(
            [sys.executable, str(root / "child.py"), url, str(root)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=self.env,
            cwd=root,
        )
        assert self.ask("ready") == "ready", f"{name} did not start"

    def ask(self, line: str) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        if not answer:
            raise RuntimeError(f"{self.name} ended on {line!r}")
        return json.loads(answer)

    def fresh(self, script: str = "fresh.py") -> tuple[float, float]:
        """(inside: import + set-up + first resume, wall) of one fresh process running
        ``script`` (``deps.py``: the imports alone, no resume)."""
        ids = self.ask("paused") if script == "fresh.py" else []
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, str(self.root / script), self.url, str(self.root), *ids],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.root,
            check=False,
        )
        wall = time.perf_counter() - start
        assert done.returncode == 0, done.stderr[-2000:]
        return float(done.stdout.split()[-1]), wall

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="a PostgreSQL server (scratch databases on it)")
    parser.add_argument("--sqlite", action="store_true", help="SQLite files instead")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--inner", type=int, default=10)
    parser.add_argument("--fresh", type=int, default=5, help="fresh processes per side")
    parser.add_argument("--paused", type=int, default=500, help="paused runs for bytes/run")
    parser.add_argument("--sides", nargs="+", default=["kneo", "langgraph", "dbos"])
    parser.add_argument("--baseline", type=Path, help="another checkout: Kneo there as 'base'")
    parser.add_argument(
        "--langgraph-durability",
        choices=["async", "sync", "exit"],
        help="LangGraph's durability (default: its own, async); sync is Kneo's guarantee",
    )
    parser.add_argument("--only", nargs="+", default=[*KINDS, "fresh", "bytes"])
    args = parser.parse_args()
    if not args.sqlite and not args.database_url:
        parser.error("--database-url or --sqlite")
    names = [n for n in args.sides if not (args.sqlite and n == "dbos")]
    names += ["base"] if args.baseline else []
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        if args.langgraph_durability:
            os.environ["PEERS_LG_DURABILITY"] = args.langgraph_durability
        sides = {}
        for name in names:
            if args.sqlite:
                url = f"sqlite:///{tmp}/{name}/{name}.sqlite"
            else:
                url = stack.enter_context(scratch_database(args.database_url, f"peer_{name}"))
            checkout = args.baseline if name == "base" else REPO
            sides[name] = Side(name, url, Path(tmp) / name, checkout)
            stack.callback(sides[name].close)
        report(sides, args)


def report(sides: dict[str, Side], args: argparse.Namespace) -> None:
    """Interleaved rounds of each kind, then fresh processes, then bytes; prints the table."""
    where = "SQLite" if args.sqlite else "PostgreSQL"
    samples: dict[str, dict[str, list[float]]] = {n: {k: [] for k in KINDS} for n in sides}
    order = list(sides)
    for round_no in range(args.rounds):
        for name in order if round_no % 2 == 0 else order[::-1]:
            for kind in KINDS:
                if kind in args.only:
                    samples[name][kind] += sides[name].ask(f"{kind} {args.inner}")
    fresh: dict[str, list[tuple[float, float]]] = {n: [] for n in sides}
    if "fresh" in args.only:
        runs = [(n, n, "fresh.py") for n in sides if n == "base" or SIDES[n]["fresh"]]
        runs += [("kneo deps", "kneo", "deps.py")] if "kneo" in sides else []
        for _, name, script in runs:
            sides[name].fresh(script)  # bytecode written, file caches warm
        for _ in range(args.fresh):
            for label, name, script in runs:
                fresh.setdefault(label, []).append(sides[name].fresh(script))
    sizes, live = {}, {}
    if "bytes" in args.only:
        sizes = {name: float(side.ask(f"bytes {args.paused}")) for name, side in sides.items()}
    if "live" in args.only and not args.sqlite:
        live = {name: float(side.ask(f"live {args.paused}")) for name, side in sides.items()}
    print(f"{where}, {args.rounds} rounds x {args.inner}, load {os.getloadavg()[0]:.1f}")
    heads = (*KINDS, "fresh", "fresh wall", "B/paused", "B/live")
    print(f"{'':14}" + "".join(f"{h:>12}" for h in heads))
    rows: dict[str, list[float]] = {}
    for name in [*sides, *(n for n in fresh if n not in sides)]:
        timed = samples.get(name, {})
        row = [_median_ms(timed[k]) if timed.get(k) else float("nan") for k in KINDS]
        for i in (0, 1):
            got = [s[i] for s in fresh[name]]
            row.append(_median_ms(got) if got else float("nan"))
        row += [sizes.get(name, float("nan")), live.get(name, float("nan"))]
        rows[name] = row
        print(
            f"{name:14}"
            + "".join(f"{v:12.2f}" for v in row[:-2])
            + f"{row[-2]:12.0f}{row[-1]:12.0f}"
        )
    for ours in ("kneo", "kneo deps"):
        for peer in (n for n in rows if n not in ("kneo", "kneo deps")):
            if ours in rows and (ours == "kneo" or fresh.get(peer)):
                ratios = [
                    k / p if p == p and p else float("nan")
                    for k, p in zip(rows[ours], rows[peer], strict=True)
                ]
                mark = "/" if ours == "kneo" else "deps/"
                print(f"{mark + peer:14}" + "".join(f"{r:12.2f}" for r in ratios))


if __name__ == "__main__":
    main()
