"""`kneo controller run` stops on SIGTERM (what `docker stop` and Kubernetes send) like on
Ctrl-C: it exits 0 and releases the leader lock, so a standby takes over at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from gitops_fixtures import Keys, Repo


def test_sigterm_releases_the_leader_lock(tmp_path: Path, repo: Repo, keys: Keys) -> None:
    env = {**os.environ, "KNEO_SERV_DATABASE_URL": f"sqlite:///{tmp_path / 'kneo.sqlite'}"}
    kneo = [sys.executable, "-m", "kneo.cli.main"]
    proc = subprocess.Popen(
        [*kneo, "controller", "run", "--repo", repo.url, "--trusted-keys", str(keys.trusted_dir),
         "--cache-dir", str(tmp_path / "cache"), "--json"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline()]
        while lines[-1] not in ("}\n", ""):  # one indented JSON document per reconcile
            lines.append(proc.stdout.readline())
        first = json.loads("".join(lines))  # the first reconcile: it leads
        assert first["leader"] is True
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() - started < 10
    finally:
        proc.kill()
        proc.wait()
    status = subprocess.run(
        [*kneo, "controller", "status", "--json"], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert json.loads(status.stdout)["leader"] is None
