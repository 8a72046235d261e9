"""A real PgBouncer (Debian's ``pgbouncer``; .ci/run installs it) in transaction mode in
front of the test PostgreSQL, on a free port, for the test that needs it; without the binary
the test skips and says why (with CI set it fails)."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from tests.npm_packages import unavailable


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def pgbouncer(database_url: str, pool_size: int = 20) -> Iterator[str]:
    """``database_url`` rewritten to go through a PgBouncer in transaction mode."""
    binary = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin")
    if binary is None:
        unavailable("pgbouncer is not installed (Debian: apt-get install pgbouncer)")
    assert binary is not None
    url = sa.make_url(database_url)
    port = _free_port()
    work = Path(tempfile.mkdtemp(prefix="kneo-pgbouncer-"))
    work.chmod(0o755)
    (work / "users.txt").write_text(f'"{url.username}" ""\n')
    (work / "pgbouncer.ini").write_text(
        f"""[databases]
* = host={url.host or "127.0.0.1"} port={url.port or 5432}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {work}/users.txt
pool_mode = transaction
max_client_conn = 1000
default_pool_size = {pool_size}
ignore_startup_parameters = extra_float_digits,options
logfile = {work}/pgbouncer.log
"""
    )
    for path in work.iterdir():
        path.chmod(0o644)
    command = [binary, str(work / "pgbouncer.ini")]
    if os.geteuid() == 0:  # PgBouncer refuses root: it runs as the Debian package's user
        user = pwd.getpwnam("postgres")
        os.chown(work, user.pw_uid, user.pw_gid)  # for its log
        command[1:1] = ["-u", "postgres"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log = (
                        (work / "pgbouncer.log").read_text()
                        if (work / "pgbouncer.log").exists()
                        else ""
                    )
                    raise AssertionError(f"pgbouncer did not start: {log[-2000:]}") from None
                time.sleep(0.05)
        yield url.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        shutil.rmtree(work, ignore_errors=True)
