"""Benchmark: reconcile of one environment at 1,000 and 10,000 bundles (issue 23, part 5).

For each size, builds a bare Git remote holding N Ed25519-signed bundles, all for one
environment (``prod``, no promotion gates), and reconciles it into a fresh SQLite store
(and, with ``--pg URL``, into a fresh PostgreSQL database on that server, dropped after):

* cold: the first reconcile (fetch, verify every bundle, activate everything);
* no-op: the same commit again, median of ``--rounds`` passes (nothing written);
* one-bundle: after a commit changing one bundle (push, then reconcile), median of
  ``--rounds`` rounds;
* one-bundle, new controller: the same after a commit, but by a controller built afresh
  on the same store and cache (what a restarted process or a new leader does first);
* the cold pass's CPU time: this process's, and its child processes' (the Git commands),
  steadier than wall time on a busy host; and the median CPU time of a no-op and of a
  one-bundle pass, the same way;
* peak RSS of this process after the size's passes (``ru_maxrss``, monotonic over sizes).

With ``--projects 1,100`` it measures instead every project's source under one leader
(:class:`~kneo.controller.projects.ProjectControllers`): for each count P, P projects each
watching a repository of ``--project-bundles`` signed bundles (one repository per project),
all reconciled once (cold), then:

* one source woken: the pass of one project's source when P are configured, median of
  ``--rounds`` (what a webhook costs: it should not grow with P);
* every source due: a pass of all P sources, and its cost per source;
* a wake-up with nothing due (the leader's lock renewed, nothing else), and a read of the
  catalog with no definition changed (every ``CATALOG_SECONDS``);
* the SQL statements each of those sends (SQLAlchemy's ``before_cursor_execute``).

With ``--code N`` each bundle is a function workflow whose spec pins (``spec.code``) one of
``N`` project modules committed beside the bundles: the controller reads and verifies the
pinned files at the commit and stores them with each promoted revision.

Usage: ``python bench/scale_reconcile.py [--sizes 1000,10000] [--rounds 5] [--pg URL] [--code N]
[--json] [--profile N]`` or ``[--projects 1,100] [--project-bundles 20]``; ``--profile N`` prints the cold pass's top N cProfile entries
by cumulative time (the timings of that run include the profiler's overhead). Only public APIs are used, so the same script measures older code
(``PYTHONPATH=<old checkout>``). Targets (issues 23 and 36, SQLite, 2 cores): one-bundle at
10,000 < 0.15 s, no-op < 0.1 s, cold 10,000 < 5 s.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import resource
import runpy
import statistics
import sys
import tempfile
import time
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from kneo.bundle import BundleSource, dump_bundle, generate_ed25519, load_keyring, load_signing_key
from kneo.bundle.sign import sign_bundle
from kneo.controller.config import ControllerConfig
from kneo.controller.controller import Controller, ReconcileResult
from kneo.controller.projects import ProjectControllers
from kneo.controller.source import GitSource
from kneo.settings import Settings
from kneo.spec.loader import load_spec_data
from kneo.spec.pinning import pin_code
from kneo.spec.project import ProjectContext
from kneo.store import Store, open_store

sys.path.append(str(Path(__file__).resolve().parents[1]))  # bench.scratch_db

from bench.scratch_db import scratch_database

ENVIRONMENT = "prod"
#: the Git helper of bench/reconcile.py (one committer identity for both benchmarks)
git = runpy.run_path(str(Path(__file__).with_name("reconcile.py")))["git"]


def spec_of(work: Path, i: int, version: int, modules: int) -> dict[str, Any]:
    """Bundle ``i``'s spec: an agent, or with ``modules`` (``--code``) a workflow whose function
    step names one of ``modules`` project modules, pinned as ``kneo spec bundle sign`` pins it."""
    agent = {"name": f"agent{i}", "system_prompt": f"v{version} #{i}"}
    if not modules:
        return {"version": "v1", "agent": agent}
    step = {"id": "f", "kind": "function", "ref": f"steps.m{i % modules}:run"}
    spec = {"version": "v1", "workflow": {"type": "sequential", "steps": [step]}}
    return pin_code(load_spec_data(spec), spec, work)


def write_bundle(work: Path, key: Any, i: int, version: int = 1, modules: int = 0) -> None:
    bundle = sign_bundle(
        spec_of(work, i, version, modules),
        key,
        name=f"agent{i:05d}",
        environment=ENVIRONMENT,
        approved_by="bench",
        approved_at=datetime(2026, 1, 1, tzinfo=UTC),
        source=BundleSource(path=f"specs/agent{i}.yaml"),
    )
    path = work / "bundles" / f"agent{i:05d}" / f"{ENVIRONMENT}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dump_bundle(bundle))


def build(root: Path, count: int, modules: int = 0) -> tuple[Path, Path, Path, Any]:
    """A bare remote with ``count`` signed bundles; returns (remote, trusted, work, key)."""
    generate_ed25519("ci", root / "keys")
    trusted = root / "trusted"
    trusted.mkdir()
    (trusted / "ci.pub").write_bytes((root / "keys" / "ci.pub").read_bytes())
    key = load_signing_key(root / "keys" / "ci.key")
    remote, work = root / "remote.git", root / "work"
    git(root, "init", "--quiet", "--bare", "-b", "main", str(remote))
    git(root, "init", "--quiet", "-b", "main", str(work))
    (work / "environments").mkdir()
    (work / "environments" / f"{ENVIRONMENT}.yaml").write_text("version: v1\n")
    for i in range(count):
        write_bundle(work, key, i)
    git(work, "add", "-A")
    git(work, "commit", "--quiet", "-m", f"{count} bundles")
    git(work, "push", "--quiet", remote.as_uri(), "HEAD:main")
    return remote, trusted, work, key


def database(root: Path, pg_server: str | None) -> AbstractContextManager[str]:
    """SQLite under ``root``, or a fresh database on the PostgreSQL server ``pg_server``
    (dropped afterwards)."""
    if pg_server is None:
        return nullcontext(f"sqlite:///{root / 'kneo.sqlite'}")
    return scratch_database(pg_server, "kneo_reconcile")


def measure(
    count: int, rounds: int, pg_server: str | None = None, profile: int = 0, modules: int = 0
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, database(Path(tmp), pg_server) as url:
        root = Path(tmp)
        remote, trusted, work, key = build(root, count, modules)
        store = open_store(url)
        config = ControllerConfig(repo=remote.as_uri(), cache_dir=root / "cache")
        keyring = load_keyring(trusted)

        def controller() -> Controller:
            source = GitSource(remote.as_uri(), ref="main", cache_dir=config.cache_dir)
            return Controller(store, source, keyring, config=config)

        cpu_of: dict[int, float] = {}  # id(result) -> CPU seconds of its pass

        def timed(ctl: Controller) -> tuple[float, ReconcileResult]:
            start, cpu_start, kids = time.perf_counter(), time.process_time(), _children_cpu()
            result = ctl.reconcile_once()
            elapsed = time.perf_counter() - start
            cpu_of[id(result)] = time.process_time() - cpu_start + _children_cpu() - kids
            if not result.ok or not result.leader:
                raise SystemExit(f"reconcile failed: {result.error or 'not the leader'}")
            return elapsed, result

        version = 1

        def commit_one() -> None:
            nonlocal version
            version += 1
            write_bundle(work, key, version % count, version=version, modules=modules)
            git(work, "commit", "--quiet", "-am", f"change one bundle ({version})")
            git(work, "push", "--quiet", remote.as_uri(), "HEAD:main")

        ctl = controller()
        profiler = cProfile.Profile() if profile else None
        if profiler is not None:
            profiler.enable()
        cpu = time.process_time()
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        cold_s, cold = timed(ctl)
        cold_cpu_s = time.process_time() - cpu
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        children_cpu_s = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
        if profiler is not None:
            profiler.disable()
            print(f"cold pass of {count} bundles, top {profile} by cumulative time:")
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(profile)
        if len(cold.written) != count:
            raise SystemExit(f"cold reconcile wrote {len(cold.written)} of {count}")
        noops = [timed(ctl) for _ in range(rounds)]
        if any(r.written for _, r in noops):
            raise SystemExit("a no-op reconcile wrote something")
        incrementals = []
        for _ in range(rounds):
            commit_one()
            elapsed, result = timed(ctl)
            if len(result.written) != 1:
                raise SystemExit(f"a one-bundle reconcile wrote {len(result.written)}")
            incrementals.append((elapsed, result))
        ctl.step_down()  # a new leader takes over at once
        ctl.source.close()  # type: ignore[attr-defined]
        commit_one()
        fresh = controller()
        fresh_s, fresh_result = timed(fresh)
        fresh.source.close()  # type: ignore[attr-defined]
        active = len(store.registry.list_registry().items)
        store.close()
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    median_incremental = statistics.median(s for s, _ in incrementals)
    last = incrementals[-1][1]
    return {
        "database": "postgresql" if pg_server else "sqlite",
        "bundles": count,
        "cold_s": round(cold_s, 3),
        "cold_cpu_s": round(cold_cpu_s, 3),
        "cold_children_cpu_s": round(children_cpu_s, 3),
        "noop_s": round(statistics.median(s for s, _ in noops), 4),
        "noop_cpu_s": round(statistics.median(cpu_of[id(r)] for _, r in noops), 4),
        "one_bundle_s": round(median_incremental, 4),
        "one_bundle_cpu_s": round(statistics.median(cpu_of[id(r)] for _, r in incrementals), 4),
        # the least disturbed pass: what a comparison of two versions on a shared host reads
        "noop_cpu_min_s": round(min(cpu_of[id(r)] for _, r in noops), 4),
        "one_bundle_cpu_min_s": round(min(cpu_of[id(r)] for _, r in incrementals), 4),
        "one_bundle_new_controller_s": round(fresh_s, 4),
        "one_bundle_verified": last.stats.get("verified"),
        "one_bundle_stage_s": last.stats.get("seconds"),
        "cold_stage_s": cold.stats.get("seconds"),
        "new_controller_verified": fresh_result.stats.get("verified"),
        "active_revisions": active,
        "peak_rss_mb": round(rss_kb / 1024, 1),
    }


def build_project_repo(root: Path, key: Any, count: int) -> Path:
    """A bare remote of ``count`` signed bundles (a project's source); returns its path."""
    remote, work = root / "remote.git", root / "work"
    git(root.parent, "init", "--quiet", "--bare", "-b", "main", str(remote))
    git(root.parent, "init", "--quiet", "-b", "main", str(work))
    (work / "environments").mkdir()
    (work / "environments" / f"{ENVIRONMENT}.yaml").write_text("version: v1\n")
    for i in range(count):
        write_bundle(work, key, i)
    git(work, "add", "-A")
    git(work, "commit", "--quiet", "-m", f"{count} bundles")
    git(work, "push", "--quiet", remote.as_uri(), "HEAD:main")
    return remote


class Statements:
    """Counts the SQL statements sent on ``store``'s engine while counting."""

    def __init__(self, store: Store) -> None:
        self.count = 0
        sa.event.listen(store.engine, "before_cursor_execute", self._seen)

    def _seen(self, *_args: Any) -> None:
        self.count += 1


def timed_pass(
    sup: ProjectControllers, statements: Statements, expected: int
) -> tuple[float, float, int]:
    """(wall s, CPU s of this process and its Git commands, statements) of one pass of the
    sources due or woken; ``expected`` of them must run, each a no-op."""
    before, kids = statements.count, _children_cpu()
    wall, cpu = time.perf_counter(), time.process_time()
    results = sup.reconcile_due()
    wall = time.perf_counter() - wall
    cpu = time.process_time() - cpu + _children_cpu() - kids
    if len(results) != expected or any(not r.ok or r.written for r in results):
        raise SystemExit(f"expected {expected} no-op passes, got {[r.to_dict() for r in results]}")
    return wall, cpu, statements.count - before


def measure_projects(
    projects: int, bundles: int, rounds: int, pg_server: str | None = None
) -> dict[str, Any]:
    """Every project's source under one leader (see the module docstring)."""
    with tempfile.TemporaryDirectory() as tmp, database(Path(tmp), pg_server) as url:
        root = Path(tmp)
        generate_ed25519("ci", root / "keys")
        trusted = root / "trusted"
        trusted.mkdir()
        (trusted / "ci.pub").write_bytes((root / "keys" / "ci.pub").read_bytes())
        key = load_signing_key(root / "keys" / "ci.key")
        (root / "host" / ".kneo").mkdir(parents=True)
        (root / "host" / ".kneo" / "config.yaml").write_text("version: v1\n")
        settings = Settings.from_env({})
        host = ProjectContext.discover(cwd=root / "host", settings=settings)
        store = open_store(url, settings=settings)
        for i in range(projects):
            (root / f"p{i:03d}").mkdir()
            remote = build_project_repo(root / f"p{i:03d}", key, bundles)
            block = {"repo": remote.as_uri(), "branch": "main", "trusted_keys": str(trusted)}
            store.projects.create_project(f"p{i:03d}", definition={"controller": block})
        config = ControllerConfig(cache_dir=root / "cache")
        sup = ProjectControllers(store, config, settings, host=host, catalog_seconds=1e9)
        statements = Statements(store)
        try:
            cold = time.perf_counter()
            results = sup.reconcile_due()
            cold = time.perf_counter() - cold
            if len(results) != projects or any(len(r.written) != bundles for r in results):
                raise SystemExit("the cold pass did not activate every bundle")
            one = []
            for _ in range(rounds):
                sup.request_reconcile("p000")
                one.append(timed_pass(sup, statements, 1))
            every = []
            for _ in range(max(1, rounds // 2)):
                sup.request_reconcile()
                every.append(timed_pass(sup, statements, projects))
            idle = [timed_pass(sup, statements, 0) for _ in range(rounds)]
            catalog = []
            for _ in range(rounds):
                before, start = statements.count, time.perf_counter()
                sup.refresh(force=True)
                catalog.append((time.perf_counter() - start, statements.count - before))
        finally:
            sup.step_down()
            sup.close()
            store.close()
    return _project_summary(pg_server, projects, bundles, cold, one, every, idle, catalog)


def _project_summary(
    pg_server: str | None,
    projects: int,
    bundles: int,
    cold: float,
    one: list[tuple[float, float, int]],
    every: list[tuple[float, float, int]],
    idle: list[tuple[float, float, int]],
    catalog: list[tuple[float, int]],
) -> dict[str, Any]:
    def med(rows: list[Any], i: int) -> float:
        return round(float(statistics.median(r[i] for r in rows)), 4)

    return {
        "database": "postgresql" if pg_server else "sqlite",
        "projects": projects,
        "bundles_per_project": bundles,
        "cold_s": round(cold, 3),
        "one_source_s": med(one, 0),
        "one_source_cpu_s": med(one, 1),
        "one_source_statements": med(one, 2),
        "every_source_s": med(every, 0),
        "every_source_per_source_s": round(med(every, 0) / projects, 4),
        "every_source_statements_per_source": round(med(every, 2) / projects, 1),
        "nothing_due_s": med(idle, 0),
        "nothing_due_statements": med(idle, 2),
        "catalog_read_s": med(catalog, 0),
        "catalog_read_statements": med(catalog, 1),
    }


def print_projects(results: list[dict[str, Any]]) -> None:
    print(
        f"{'database':>10} {'projects':>8} {'one s':>7} {'one CPU s':>9} {'one SQL':>7} "
        f"{'all s':>7} {'all s/src':>9} {'SQL/src':>7} {'idle s':>7} {'idle SQL':>8} "
        f"{'catalog s':>9} {'catalog SQL':>11}"
    )
    for r in results:
        print(
            f"{r['database']:>10} {r['projects']:>8} {r['one_source_s']:>7} "
            f"{r['one_source_cpu_s']:>9} {r['one_source_statements']:>7} "
            f"{r['every_source_s']:>7} {r['every_source_per_source_s']:>9} "
            f"{r['every_source_statements_per_source']:>7} {r['nothing_due_s']:>7} "
            f"{r['nothing_due_statements']:>8} {r['catalog_read_s']:>9} "
            f"{r['catalog_read_statements']:>11}"
        )


def _children_cpu() -> float:
    """CPU seconds of this process's finished child processes (the Git commands)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000", help="comma-separated bundle counts")
    parser.add_argument("--rounds", type=int, default=5, help="no-op and one-bundle rounds")
    parser.add_argument(
        "--pg",
        metavar="URL",
        help="also on this PostgreSQL server (e.g. postgresql+psycopg://postgres@127.0.0.1/postgres)",
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--profile", type=int, default=0, metavar="N", help="print the cold pass's top N"
    )
    parser.add_argument(
        "--projects", metavar="COUNTS", help="every project's source under one leader: e.g. 1,100"
    )
    parser.add_argument("--project-bundles", type=int, default=20, help="bundles per project")
    parser.add_argument(
        "--code",
        type=int,
        default=0,
        metavar="N",
        help="each bundle a function workflow pinning one of N project modules",
    )
    args = parser.parse_args(argv)
    servers: list[str | None] = [None, args.pg] if args.pg else [None]
    if args.projects:
        counts = [int(s) for s in args.projects.split(",") if s.strip()]
        found = [
            measure_projects(n, args.project_bundles, args.rounds, server)
            for server in servers
            for n in counts
        ]
        if args.json:
            print(json.dumps(found, indent=2))
        else:
            print_projects(found)
        return 0
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    results = [
        measure(n, args.rounds, server, args.profile, args.code)
        for server in servers
        for n in sizes
    ]
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(
        f"{'database':>10} {'bundles':>8} {'cold s':>8} {'no-op s':>8} {'one-bundle s':>13} "
        f"{'new ctl s':>10} {'verified':>9} {'peak RSS MB':>12}"
    )
    for r in results:
        print(
            f"{r['database']:>10} {r['bundles']:>8} {r['cold_s']:>8} {r['noop_s']:>8} "
            f"{r['one_bundle_s']:>13} {r['one_bundle_new_controller_s']:>10} "
            f"{r['one_bundle_verified']!s:>9} {r['peak_rss_mb']:>12}"
        )
    for r in results:
        where = f"{r['bundles']} bundles ({r['database']})"
        print(
            f"{where}, cold: {r['cold_s']} s wall, {r['cold_cpu_s']} s CPU (this process) + "
            f"{r['cold_children_cpu_s']} s (child processes); stages: {r['cold_stage_s']}"
        )
        print(f"{where}, one-bundle stages: {r['one_bundle_stage_s']}")
        print(
            f"{where}, CPU per pass (this process and its Git commands, steadier than wall "
            f"time on a busy host): no-op {r['noop_cpu_s']} s (least {r['noop_cpu_min_s']} s), "
            f"one-bundle {r['one_bundle_cpu_s']} s (least {r['one_bundle_cpu_min_s']} s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
