"""Where the test suite's CPU goes: seconds per test file, in the test process and in the
processes it started and waited for (``RUSAGE_CHILDREN``: servers, CLIs, workers, builds).

CI is bound by CPU, not by waiting (both cores ~94 % busy through a run on a slow day; on a
quick one a fourth worker made the run slower, not faster), so this, not wall time under
contention, says which tests cost the run its minutes. A pytest plugin while the
suite runs, then a report::

    PYTHONPATH=bench python -m pytest -n auto -p suite_cpu
    python bench/suite_cpu.py [--top 40]

Each test's line goes to ``$KNEO_SUITE_CPU_LOG`` (default: ``suite_cpu.jsonl`` in the
temporary directory; appended, so remove it before a new run). A module's fixtures count in
its first test. Not counted per test: collection, processes nobody waited for, and the
database server's own work; the line ``the whole run`` adds collection and whatever the test
processes reaped outside a test.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import resource
import tempfile
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

LOG = Path(os.environ.get("KNEO_SUITE_CPU_LOG") or Path(tempfile.gettempdir()) / "suite_cpu.jsonl")


def _cpu() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF)
    waited = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, waited.ru_utime + waited.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(
    item: pytest.Item, nextitem: pytest.Item | None
) -> Generator[None, None, None]:
    before, started = _cpu(), time.monotonic()
    yield
    after = _cpu()
    line = {
        "test": item.nodeid.split("@")[0],
        "self": round(after[0] - before[0], 3),
        "children": round(after[1] - before[1], 3),
        "wall": round(time.monotonic() - started, 3),
        "worker": os.environ.get("PYTEST_XDIST_WORKER", "main"),
        "end": round(time.time(), 3),
    }
    with LOG.open("a") as log:
        log.write(json.dumps(line) + "\n")


def pytest_unconfigure(config: pytest.Config) -> None:
    """The whole run, once, in the process that started the workers: its own CPU and what it
    reaped (the workers, with every process they waited for, fixtures' and collection's too)."""
    if hasattr(config, "workerinput"):
        return
    own, reaped = _cpu()
    with LOG.open("a") as log:
        log.write(
            json.dumps({"run": True, "self": round(own, 3), "children": round(reaped, 3)}) + "\n"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=40, help="files to list")
    args = parser.parse_args()
    lines: list[dict[str, Any]] = [json.loads(line) for line in LOG.read_text().splitlines()]
    rows = [row for row in lines if "run" not in row]
    for run in (row for row in lines if "run" in row):
        print(
            f"the whole run: {run['self'] + run['children']:.0f} CPU-s "
            "(the test processes and every process they waited for, as their parent reaped them)"
        )
    own: collections.Counter[str] = collections.Counter()
    waited: collections.Counter[str] = collections.Counter()
    for row in rows:
        name = row["test"].split("::")[0]
        own[name] += row["self"]
        waited[name] += row["children"]
    total = own + waited
    print(
        f"{len(rows)} tests: {sum(total.values()):.0f} CPU-s "
        f"({sum(own.values()):.0f} in the test processes, {sum(waited.values()):.0f} in theirs)"
    )
    print("| file | CPU-s | in the test | in its processes |\n|---|---|---|---|")
    for name, seconds in total.most_common(args.top):
        print(f"| {name} | {seconds:.1f} | {own[name]:.1f} | {waited[name]:.1f} |")
    workers(rows)


def workers(rows: list[dict[str, Any]]) -> None:
    """Per worker: seconds in tests, and when its last test ended (from the first test's
    start): a worker that ends long before the others leaves a core idle at the run's tail."""
    timed = [row for row in rows if "end" in row]
    if not timed:
        return
    start = min(row["end"] - row["wall"] for row in timed)
    by: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for row in timed:
        by[row["worker"]].append(row)
    print("| worker | in tests (s) | last test ended (s) | its last file |\n|---|---|---|---|")
    for name, mine in sorted(by.items()):
        last = max(mine, key=lambda row: row["end"])
        busy = sum(row["wall"] for row in mine)
        ended = last["end"] - start
        print(f"| {name} | {busy:.0f} | {ended:.0f} | {last['test'].split('::')[0]} |")


if __name__ == "__main__":
    main()
