"""The suite's ``kneo`` processes (``tests/cli_zygote.py``) answer as a fresh interpreter's:
the same exit status and output, signals passed on, a kill -9 of the launcher ends the command.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests import cli_zygote
from tests.cli_zygote import FRESH, KNEO
from tests.operations.helpers import wait_for


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "KNEO_SERV_DATABASE_URL": f"sqlite:///{tmp_path / 'kneo.sqlite'}",
        "KNEO_SERV_WORKER_POLL_SECONDS": "0.1",
        "COLUMNS": "120",
    }


def _commands_in(directory: Path) -> set[int]:
    """Processes forked from a zygote (its command line) whose working directory is
    ``directory``: a fresh interpreter or the launcher has another command line."""
    found = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if os.readlink(proc / "cwd") != str(directory):
                continue
            if b"cli_zygote.py" not in (proc / "cmdline").read_bytes():
                continue
            found.add(int(proc.name))
        except OSError:
            continue
    return found


@pytest.mark.parametrize(
    "argv",
    [
        ["--version"],
        ["no-such-command"],
        ["spec", "lint", "broken.yaml"],
        ["runs", "list", "--json"],
        ["human", "list"],
    ],
)
def test_a_command_answers_as_a_fresh_interpreter(tmp_path: Path, argv: list[str]) -> None:
    assert os.environ.get(cli_zygote.ENV), "this test process has no zygote"
    (tmp_path / "broken.yaml").write_text("version: v1\nagent:\n  name: [unclosed\n")
    env = _env(tmp_path)
    fresh = subprocess.run([*FRESH, *argv], cwd=tmp_path, env=env, capture_output=True, text=True)
    forked = subprocess.run([*KNEO, *argv], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert (forked.returncode, forked.stdout, forked.stderr) == (
        fresh.returncode,
        fresh.stdout,
        fresh.stderr,
    )


def test_the_command_is_forked_and_a_signal_reaches_it(tmp_path: Path) -> None:
    env = _env(tmp_path)
    logs = [tmp_path / "fresh.log", tmp_path / "forked.log"]
    with logs[0].open("wb") as one, logs[1].open("wb") as other:
        fresh = subprocess.Popen([*FRESH, "worker"], cwd=tmp_path, env=env, stderr=one)
        launcher = subprocess.Popen([*KNEO, "worker"], cwd=tmp_path, env=env, stderr=other)
    try:
        (command,) = wait_for(lambda: _commands_in(tmp_path), 30, "the forked worker")
        assert command != launcher.pid
        wait_for(
            lambda: all(b"running with concurrency" in log.read_bytes() for log in logs),
            30,
            "both workers to start",
        )
        fresh.send_signal(signal.SIGTERM)
        launcher.send_signal(signal.SIGTERM)
        assert launcher.wait(timeout=30) == fresh.wait(timeout=30)
        wait_for(lambda: not _commands_in(tmp_path), 30, "the forked worker to end")
        assert [log.read_text().splitlines()[-1] for log in logs] == [
            "worker stopped after 0 run(s)"
        ] * 2
    finally:
        fresh.kill()
        launcher.kill()


def test_kill_9_of_the_launcher_ends_the_command(tmp_path: Path) -> None:
    launcher = subprocess.Popen([*KNEO, "worker"], cwd=tmp_path, env=_env(tmp_path))
    try:
        wait_for(lambda: _commands_in(tmp_path), 30, "the forked worker")
        launcher.kill()
        assert launcher.wait(timeout=10) == -signal.SIGKILL
        wait_for(lambda: not _commands_in(tmp_path), 10, "the command to end with its launcher")
    finally:
        launcher.kill()
