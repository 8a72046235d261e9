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

Usage: ``python bench/scale_reconcile.py [--sizes 1000,10000] [--rounds 5] [--pg URL]
[--json] [--profile N]``; ``--profile N`` prints the cold pass's top N cProfile entries
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

from kneo.bundle import BundleSource, dump_bundle, generate_ed25519, load_keyring, load_signing_key
from kneo.bundle.sign import sign_bundle
from kneo.controller.config import ControllerConfig
from kneo.controller.controller import Controller, ReconcileResult
from kneo.controller.source import GitSource
from kneo.store import open_store

sys.path.append(str(Path(__file__).resolve().parents[1]))  # bench.scratch_db

from bench.scratch_db import scratch_database

ENVIRONMENT = "prod"
#: the Git helper of bench/reconcile.py (one committer identity for both benchmarks)
git = runpy.run_path(str(Path(__file__).with_name("reconcile.py")))["git"]


def write_bundle(work: Path, key: Any, i: int, version: int = 1) -> None:
    bundle = sign_bundle(
        {"version": "v1", "agent": {"name": f"agent{i}", "system_prompt": f"v{version} #{i}"}},
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


def build(root: Path, count: int) -> tuple[Path, Path, Path, Any]:
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
    count: int, rounds: int, pg_server: str | None = None, profile: int = 0
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, database(Path(tmp), pg_server) as url:
        root = Path(tmp)
        remote, trusted, work, key = build(root, count)
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
            write_bundle(work, key, version % count, version=version)
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
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    servers: list[str | None] = [None, args.pg] if args.pg else [None]
    results = [measure(n, args.rounds, server, args.profile) for server in servers for n in sizes]
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
