"""``python -m kneo.cli.main ARGS``, run by this worker's zygote (``tests/cli_zygote.py``):
hands this process's argv, environment, working directory and standard streams over, passes
signals on, and exits as the command did. Without a zygote, runs the command itself."""

from __future__ import annotations

import json
import os
import runpy
import signal
import socket
import sys

ENV = "TEST_KNEO_ZYGOTE"  # tests/cli_zygote.py sets it
#: When set, the file the command's pid is written to as it starts (the launcher's is not it).
PID_FILE = "TEST_KNEO_PID_FILE"
#: The signals a launcher passes on to its command (SIGKILL cannot be: the watcher sees it).
FORWARDED = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)


def _started(pid: int) -> None:
    path = os.environ.get(PID_FILE)
    if path:
        with open(path, "w") as out:
            out.write(str(pid))


def _alone() -> None:
    """What ``python -m kneo.cli.main`` does: the working directory first on the path."""
    _started(os.getpid())
    sys.path[0] = os.getcwd()
    runpy.run_module("kneo.cli.main", run_name="__main__", alter_sys=True)


def _launch(path: str) -> None:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(path)
    except OSError:
        conn.close()
        _alone()
        return
    env = {k: v for k, v in os.environ.items() if k != ENV}
    body = json.dumps({"argv": sys.argv[1:], "env": env, "cwd": os.getcwd()}).encode()
    socket.send_fds(conn, [len(body).to_bytes(4, "big") + body], [0, 1, 2])
    replies = conn.makefile("rb")
    first = replies.readline()
    if not first:
        sys.exit("kneo_cli: the zygote closed the connection before starting the command")
    _started(json.loads(first)["pid"])

    def forward(number: int, _frame: object) -> None:
        conn.sendall(json.dumps({"signal": number}).encode() + b"\n")

    for number in FORWARDED:
        signal.signal(number, forward)
    line = replies.readline()
    if not line:
        sys.exit("kneo_cli: the zygote's watcher went away")
    status = json.loads(line)["status"]
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        if number != signal.SIGKILL:
            signal.signal(number, signal.SIG_DFL)
        os.kill(os.getpid(), number)
    sys.exit(os.waitstatus_to_exitcode(status))


if __name__ == "__main__":
    zygote = os.environ.get(ENV)
    if zygote:
        _launch(zygote)
    else:
        _alone()
