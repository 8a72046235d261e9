"""Function refs are inspected from many threads at once (API requests admitting specs):
the parse behind :func:`kneo.spec.refs.inspect_ref` must not trip CPython 3.11's AST
constructor, whose recursion depth is interpreter-wide state (a 500 on ``POST /v1/runs``
under load, seen in ``bench/fleet.py``)."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from kneo.spec import refs

ROOT = Path(__file__).resolve().parents[2]


class _Cycle:
    def __del__(self) -> None:  # Python code run by the collector, on whichever thread
        pass


def race(source: Path) -> list[str]:
    """Six threads parse ``source`` while a seventh makes garbage with finalizers (collections,
    and thread switches in them), switching as often as the interpreter allows (the race
    needs a switch mid-parse); the problems the parses met."""
    analyse = refs._analyse.__wrapped__  # the parse itself, past the per-file cache
    problems: list[str] = []
    stop = threading.Event()

    def parse() -> None:
        for _ in range(15):
            try:
                found = analyse(str(source), 0)
            except SystemError as exc:  # what the unguarded parse raised
                problems.append(str(exc))
                continue
            if found.problem or "step" not in found.functions:
                problems.append(found.problem or "no 'step'")

    def churn() -> None:
        while not stop.is_set():
            cycle = _Cycle()
            cycle.self = cycle  # type: ignore[attr-defined]

    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    churner = threading.Thread(target=churn)
    churner.start()
    parsers = [threading.Thread(target=parse) for _ in range(6)]
    try:
        for thread in parsers:
            thread.start()
        for thread in parsers:
            thread.join()
    finally:
        stop.set()
        churner.join()
        sys.setswitchinterval(before)
    return problems


def test_concurrent_parses_never_raise(tmp_path: Path) -> None:
    """In an interpreter of its own: with a switch every microsecond, every thread an earlier
    test left in a test worker is scheduled as often as the parsers (4.5 minutes in CI
    instead of seconds)."""
    source = tmp_path / "steps.py"
    source.write_text(
        "def step(text):\n"
        + "".join(f"    x{i} = [{{'a': ({i}, [1, (3, 4)])}} for _ in y if z]\n" for i in range(150))
    )
    code = (
        "import sys; from pathlib import Path; from tests.spec.test_refs_threads import race; "
        "print(repr(race(Path(sys.argv[1]))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(source)],
        cwd=ROOT, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
