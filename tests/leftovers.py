"""Processes a test run started and left behind.

Every process a test starts inherits the run's mark (an environment variable); at the end of
the run, a process that still carries it is a leftover, whether its parent is the test
process or it was handed to init when a shell or a ``kneo`` process above it exited. On a
loaded two-core machine such leftovers (``kneo service serve`` after a timed-out test) kept a
core busy for every later test.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import time
from collections.abc import Callable
from pathlib import Path

#: The environment variable every process of one test run carries.
MARK = "KNEO_TEST_RUN"

#: How execnet starts a pytest-xdist worker: the workers exit on their own after the run.
_WORKER_COMMAND = b"import sys;exec(eval(sys.stdin.readline()))"


def mark_run() -> str:
    """Give this process (and so every process started from now on) a fresh mark."""
    token = secrets.token_hex(8)
    os.environ[MARK] = token
    return token


def _carries(pid: int, entry: bytes) -> bool:
    proc = Path("/proc", str(pid))
    try:
        if (proc / "stat").read_bytes().rsplit(b")", 1)[1].split()[0] == b"Z":
            return False  # exited, waiting to be reaped: it holds nothing
        if _WORKER_COMMAND in (proc / "cmdline").read_bytes():
            return False
        return entry in (proc / "environ").read_bytes().split(b"\0")
    except (OSError, IndexError):
        return False  # gone meanwhile, or not ours to read


def survivors(token: str) -> dict[int, str]:
    """Processes other than this one that carry ``token``: pid -> command line."""
    entry = f"{MARK}={token}".encode()
    found: dict[int, str] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        if _carries(int(proc.name), entry):
            try:
                command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            found[int(proc.name)] = command.strip()[:200]
    return found


def reap(token: str, *, grace: float = 10.0) -> dict[int, str]:
    """The processes still carrying ``token`` after ``grace`` seconds, killed (so a failed run
    does not leave them behind either); empty when every one ended in time."""
    deadline = time.monotonic() + grace
    left = survivors(token)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = survivors(token)
    for pid in left:
        with contextlib.suppress(OSError):  # ended meanwhile
            os.kill(pid, signal.SIGKILL)
    return left


#: What the running test opened that holds processes, closed when it ends (tests/conftest.py).
_CLOSERS: list[Callable[[], object]] = []


def close_after_test(close: Callable[[], object]) -> None:
    """Have ``close`` called when the running test ends, so the processes what it closes
    holds (a controller's Git source: GitPython's ``cat-file`` processes) do not outlive the
    test. Without workers nothing else would end them before the run's end: the processes a
    worker started end with it, so only a run without ``-n`` saw them."""
    _CLOSERS.append(close)


def close_test_resources() -> None:
    """Call what the test asked to close, newest first."""
    while _CLOSERS:
        _CLOSERS.pop()()
