"""Function refs are inspected from many threads at once (API requests admitting specs):
the parse behind :func:`kneo.spec.refs.inspect_ref` must not trip CPython 3.11's AST
constructor, whose recursion depth is interpreter-wide state (a 500 on ``POST /v1/runs``
under load, seen in ``bench/fleet.py``)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from kneo.spec import refs


class _Cycle:
    def __del__(self) -> None:  # Python code run by the collector, on whichever thread
        pass


@pytest.fixture
def busy_switching() -> Iterator[None]:
    """Threads switch as often as the interpreter allows (the race needs a switch mid-parse)."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def test_concurrent_parses_never_raise(tmp_path: Path, busy_switching: None) -> None:
    source = tmp_path / "steps.py"
    source.write_text(
        "def step(text):\n"
        + "".join(f"    x{i} = [{{'a': ({i}, [1, (3, 4)])}} for _ in y if z]\n" for i in range(150))
    )
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

    def churn() -> None:  # garbage with finalizers: collections, and thread switches in them
        while not stop.is_set():
            cycle = _Cycle()
            cycle.self = cycle  # type: ignore[attr-defined]

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
    assert problems == []
