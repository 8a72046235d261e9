"""`kneo controller run` stops on SIGTERM (what `docker stop` and Kubernetes send) like on
Ctrl-C: it exits 0 and releases the leader lock, so a standby takes over at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from gitops_fixtures import Keys, Repo

from tests.cli_zygote import KNEO


def test_sigterm_releases_the_leader_lock(tmp_path: Path, repo: Repo, keys: Keys) -> None:
    env = {**os.environ, "KNEO_SERV_DATABASE_URL": f"sqlite:///{tmp_path / 'kneo.sqlite'}"}
    kneo = [*KNEO]
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
    # its store was closed: SQLite's last connection checkpointed the WAL and removed it
    assert not (tmp_path / "kneo.sqlite-wal").exists()
    status = subprocess.run(
        [*kneo, "controller", "status", "--json"], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert json.loads(status.stdout)["leader"] is None


def test_each_reconcile_is_a_span(tmp_path: Path, repo: Repo, keys: Keys) -> None:
    """With tracing on, `controller run` exports one ``reconcile`` span per pass, carrying
    the commit it reconciled (the console exporter writes them to stdout as JSON)."""
    repo.write("README.md", "bundles live under bundles/\n")
    sha = repo.commit("first")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},
        "KNEO_SERV_DATABASE_URL": f"sqlite:///{tmp_path / 'kneo.sqlite'}",
        "KNEO_SERV_OTEL_ENABLED": "true",
        "OTEL_TRACES_EXPORTER": "console",
    }
    proc = subprocess.Popen(
        [*KNEO, "controller", "run", "--repo", repo.url,
         "--trusted-keys", str(keys.trusted_dir), "--cache-dir", str(tmp_path / "cache"),
         "--json"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        while line and '"leader"' not in line:  # the first reconcile's document
            line = proc.stdout.readline()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)  # the exporter flushes on the way out
        assert proc.returncode == 0, err
    finally:
        proc.kill()
        proc.wait()
    decoder = json.JSONDecoder()
    spans = []
    for start in (i for i in range(len(out)) if out.startswith('{\n    "name"', i)):
        spans.append(decoder.raw_decode(out, start)[0])
    reconciles = [s for s in spans if s["name"] == "reconcile"]
    assert reconciles, out[-2000:]
    assert reconciles[0]["attributes"]["kneo.git.commit"] == sha
    assert reconciles[0]["status"]["status_code"] in ("UNSET", "OK")
