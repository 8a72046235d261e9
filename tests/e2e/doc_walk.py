"""Walking a documentation page as a reader would: its fenced blocks, run as printed.

A page's ``bash`` blocks run in ``bash -euo pipefail`` in a fresh copy of the project (no
``KNEO_*`` variables inherited, ``HOME`` in the temp dir, so profiles start empty). The one
substitution is the port: pages print ``8000``, tests serve on a free port.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2

from tests import http_calls

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def blocks(page: Path) -> list[tuple[str, str]]:
    """``(language, body)`` of every fenced block of ``page``, in order."""
    return blocks_of(page.read_text())


def blocks_of(text: str) -> list[tuple[str, str]]:
    """``(language, body)`` of every fenced block of ``text``, in order."""
    return [(m.group(1), m.group(2)) for m in FENCE.finditer(text)]


def project_copy(tmp: Path) -> Path:
    """The files a reader's checkout has that the pages use: examples, environments, config."""
    for name in ("examples", "environments"):
        shutil.copytree(ROOT / name, tmp / name, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp / ".kneo").mkdir()
    shutil.copy(ROOT / ".kneo" / "config.yaml", tmp / ".kneo" / "config.yaml")
    return tmp


def reader_env(home: Path, **extra: str) -> dict[str, str]:
    """A shell with ``kneo`` and ``python`` on PATH and nothing of Kneo's configured."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KNEO_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["HOME"] = str(home)
    env["COLUMNS"] = "80"
    return {**env, **extra}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def with_port(text: str, port: int) -> str:
    """The page's ``8000`` (in URLs and ``--port``) as the test's port."""
    return text.replace("127.0.0.1:8000", f"127.0.0.1:{port}").replace(
        "--port 8000", f"--port {port}"
    )


def run_script(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@contextmanager
def serving(block: str, cwd: Path, env: dict[str, str], port: int) -> Iterator[Path]:
    """Run a page's ``kneo service serve`` block in the background until ``/livez`` answers;
    yields its log file; stops the whole process group afterwards."""
    log = cwd / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            ["bash", "-c", "set -euo pipefail\n" + block],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if http_calls.get(f"http://127.0.0.1:{port}/livez", timeout=1).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the service did not start: " + log.read_text()
            time.sleep(0.1)
        yield log
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
