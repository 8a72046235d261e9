"""The end-of-run check finds what a test left running, even when init adopted it."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

from tests import leftovers


def _orphan(token: str) -> int:
    """A ``sleep`` whose parent shell has already exited (init adopts it): its pid."""
    shell = subprocess.run(
        ["sh", "-c", "sleep 60 >/dev/null 2>&1 & echo $!"],
        env={**os.environ, leftovers.MARK: token},
        capture_output=True,
        text=True,
        check=True,
    )
    return int(shell.stdout)


def test_an_adopted_process_carrying_the_mark_is_found_and_killed() -> None:
    token = secrets.token_hex(8)
    pid = _orphan(token)
    assert pid in leftovers.survivors(token)
    assert pid in leftovers.reap(token, grace=0.3)
    deadline = time.monotonic() + 5
    while pid in leftovers.survivors(token) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pid not in leftovers.survivors(token)


def test_a_process_of_another_run_or_one_that_ended_is_not_a_leftover() -> None:
    token = secrets.token_hex(8)
    other = _orphan(secrets.token_hex(8))
    try:
        done = subprocess.Popen(["true"], env={**os.environ, leftovers.MARK: token})
        done.wait()
        assert leftovers.reap(token, grace=0.1) == {}
    finally:
        os.kill(other, 9)


def test_a_run_without_workers_ends_clean() -> None:
    """``python -m pytest FILE`` (no ``-n``): the process's own zygote carries the mark too,
    and is stopped before the count (it was counted, killed and failed the run, 10 s late)."""
    quick = f"{__file__}::test_a_process_of_another_run_or_one_that_ended_is_not_a_leftover"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTEST_", leftovers.MARK, "TEST_KNEO_"))
    }
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
         quick],
        cwd=Path(__file__).parents[2], env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "still running" not in run.stdout
