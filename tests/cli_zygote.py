"""``kneo`` processes for the tests, forked from one that has already imported Kneo.

Most of a CLI process's CPU is importing Kneo and its dependencies (0.3-0.5 CPU-s of a
0.4-0.6 CPU-s ``human resume``), and the suite starts about a thousand of them, so CI spent
several minutes of both cores importing the same modules. A test that starts ``kneo`` runs
:data:`KNEO`, a small launcher (``tests/kneo_cli.py``): it hands its argv, environment,
working directory and standard streams to this worker's zygote, which forks a child that runs
``python -m kneo.cli.main`` as a fresh interpreter would, on those streams. What the test
holds is still a process whose exit status, output and signals are the command's:

- the launcher forwards SIGTERM, SIGINT, SIGHUP, SIGQUIT and SIGUSR1/2 to the command and
  exits with its status (killed by a signal: the launcher kills itself with it);
- SIGKILL to the launcher (a test's kill -9) ends the command at once: the zygote's watcher
  for that command sees the launcher's end of the socket close and kills it.

The command is a new process with Kneo's modules imported and nothing else done: no store
opened, no settings read, no thread started, no project module loaded. The environment,
``sys.path`` (the working directory, then ``PYTHONPATH``, as ``-m`` builds it) and ``argv`` are
the launcher's. Without a zygote (``TEST_KNEO_ZYGOTE`` unset, or a test that passes an
environment without it) the launcher runs ``kneo.cli.main`` itself, as ``-m`` would.

Tests about how a process starts (imports, the console script, an installed wheel) start a
real interpreter instead.
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import os
import runpy
import select
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

#: The environment variable naming this worker's zygote socket (``tests/kneo_cli.py`` reads it).
ENV = "TEST_KNEO_ZYGOTE"
#: Start ``kneo`` with these instead of ``[sys.executable, "-m", "kneo.cli.main"]``.
KNEO = [sys.executable, str(Path(__file__).with_name("kneo_cli.py"))]
#: A fresh interpreter, for a process whose pid a test compares with what the process records
#: (a worker's claim, a controller's lock, its CPU): the launcher's pid is not its command's.
FRESH = [sys.executable, "-m", "kneo.cli.main"]


def start() -> subprocess.Popen[bytes]:
    """Start this process's zygote and name its socket in ``os.environ`` (so every process
    started from now on finds it). The socket is bound before the zygote imports Kneo: a
    launcher that comes first waits in the backlog."""
    path = Path(tempfile.mkdtemp(prefix="kneo-zygote-")) / "socket"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(64)
    proc = subprocess.Popen(
        [sys.executable, __file__, str(listener.fileno())],
        pass_fds=[listener.fileno()],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,  # a pytest-xdist worker's stdout is its channel
    )
    listener.close()
    os.environ[ENV] = str(path)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(timeout=30)
    path = Path(os.environ.pop(ENV))
    path.unlink(missing_ok=True)
    path.parent.rmdir()


def _preload() -> None:
    """What ``kneo`` commands import, imported once (the order ``main()`` would use)."""
    from kneo.deferred_imports import defer_costly_imports

    defer_costly_imports()
    import jsonschema  # noqa: F401
    import psycopg  # noqa: F401
    import sqlalchemy.dialects.postgresql.psycopg
    import sqlalchemy.dialects.sqlite.pysqlite  # noqa: F401
    import uvicorn  # noqa: F401

    import kneo.cli.client
    import kneo.cli.main
    import kneo.controller.controller
    import kneo.engine.executor
    import kneo.platform.factory
    import kneo.service.app  # noqa: F401

    # runpy runs the entry module itself, fresh, as ``-m`` does (its imports stay cached)
    del sys.modules["kneo.cli.main"]
    # what was imported is never collected: no command's collections (nor its exit's) walk it
    gc.freeze()


def _receive(conn: socket.socket) -> tuple[dict[str, Any], list[int]]:
    data, fds, _flags, _addr = socket.recv_fds(conn, 1 << 20, 3)
    size = int.from_bytes(data[:4], "big")
    body = data[4:]
    while len(body) < size:
        chunk = conn.recv(size - len(body))
        if not chunk:
            raise EOFError("the launcher went away")
        body += chunk
    return json.loads(body), fds


def _watch(conn: socket.socket, child: int) -> None:
    """The command's parent: pass the launcher's signals on, kill the command when the
    launcher dies, report the command's wait status."""
    pidfd = os.pidfd_open(child)
    conn.sendall(json.dumps({"pid": child}).encode() + b"\n")
    pending = b""
    while True:
        ready, _, _ = select.select([conn, pidfd], [], [])
        if pidfd in ready:
            _, status = os.waitpid(child, 0)
            with contextlib.suppress(OSError):  # the launcher may be gone
                conn.sendall(json.dumps({"status": status}).encode() + b"\n")
            return
        chunk = conn.recv(4096)
        if not chunk:  # the launcher is gone (kill -9): so is its command
            os.kill(child, signal.SIGKILL)
            continue
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            os.kill(child, json.loads(line)["signal"])


def _reap() -> None:
    """Collect the watchers that ended (waited for, so their CPU counts as this process's
    children's, and so as the test worker's once it reaps this one)."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def _serve(listener: socket.socket) -> dict[str, Any]:
    """Accept launchers until told to stop; return (in a forked command) its request."""
    parent = os.getppid()
    while True:
        ready, _, _ = select.select([listener], [], [], 1.0)
        _reap()
        if os.getppid() != parent:
            sys.exit(0)  # the test worker is gone
        if not ready:
            continue
        conn, _ = listener.accept()
        try:
            request, fds = _receive(conn)
        except (OSError, EOFError, ValueError):
            conn.close()
            continue
        if os.fork() == 0:  # the watcher
            listener.close()
            child = os.fork()
            if child == 0:  # the command
                conn.close()
                for target, fd in enumerate(fds):
                    os.dup2(fd, target)
                    os.close(fd)
                return request
            for fd in fds:
                os.close(fd)
            try:
                _watch(conn, child)
            finally:
                os._exit(0)
        conn.close()
        for fd in fds:
            os.close(fd)


def _streams(unbuffered: bool) -> None:
    """Standard streams on the launcher's descriptors, buffered as a fresh interpreter's
    would be for them (a terminal or stderr by line, a pipe or file by block)."""
    encoding, errors = sys.stdout.encoding, sys.stdout.errors
    sys.stdin = sys.__stdin__ = io.TextIOWrapper(
        open(0, "rb", closefd=False),  # noqa: SIM115 (the process's stdin)
        encoding=encoding,
        errors=errors,
    )
    for fd, name in ((1, "stdout"), (2, "stderr")):
        binary = open(fd, "wb", buffering=0 if unbuffered else -1, closefd=False)  # noqa: SIM115
        stream = io.TextIOWrapper(
            binary,  # type: ignore[arg-type]
            encoding=encoding,
            errors="backslashreplace" if fd == 2 else errors,
            line_buffering=fd == 2 or os.isatty(fd),
            write_through=unbuffered,
        )
        setattr(sys, name, stream)
        setattr(sys, f"__{name}__", stream)


def _become(request: dict[str, Any]) -> None:
    """Turn this forked process into ``python -m kneo.cli.main ARGS`` as the launcher saw it."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    own = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    sys.path[:] = [os.getcwd(), *own, *BASE_PATH]
    _streams(bool(os.environ.get("PYTHONUNBUFFERED")))
    sys.argv[:] = ["kneo.cli.main", *request["argv"]]
    runpy.run_module("kneo.cli.main", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    _inherited = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    BASE_PATH = [p for p in sys.path[1:] if p not in _inherited]
    sys.path[0:1] = []  # tests/ is not on a command's path
    _listener = socket.socket(fileno=int(sys.argv[1]))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    _preload()
    _request = _serve(_listener)
    del _listener
    _become(_request)
