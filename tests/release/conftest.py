"""One build of the wheel and sdist per test run (tests/release/wheel_build.py).

Under xdist each worker has its own session, so a session fixture alone built the release
once per worker: three builds of ~25 s on a two-core machine, each slowing the others. The
first worker to ask builds into a directory beside the workers' own temporary directories,
holding an exclusive lock; the others wait on the lock and then read what it left.
"""

from __future__ import annotations

import fcntl
from pathlib import Path

import pytest

from tests.release.wheel_build import Built, build_distributions, read_distributions


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Built:
    if worker_id == "master":  # not under xdist: this session is the whole run
        return build_distributions(tmp_path_factory.mktemp("dist"))
    shared = tmp_path_factory.getbasetemp().parent / "release-dist"
    with Path(f"{shared}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if (shared / "build.log").is_file():
            return read_distributions(shared)
        return build_distributions(shared)
