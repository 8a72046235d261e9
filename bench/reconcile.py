"""Benchmark: reconcile a generated repository of signed bundles (issue 7's "Measure").

Builds a bare Git remote holding N Ed25519-signed bundles spread over dev, staging and prod
(staging requires the digest in dev, prod in staging; no human gate so everything can
activate), then measures with a real SQLite store:

* cold: the first reconcile (fetch, verify every bundle, activate everything);
* no-op: the same commit again (nothing written);
* incremental: after a commit changing one bundle (one re-verification, one activation);
* webhook: commit-to-active through ``POST /v1/controller/webhook`` (signed like GitHub) on
  the real app, with the controller loop running in it (median of ``--webhook-rounds``).

Usage: ``python bench/reconcile.py [--bundles 1000] [--json]``. Targets on 2 cores:
cold < 10 s, incremental < 0.2 s, webhook commit-to-active < 1 s.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kneo.bundle import BundleSource, dump_bundle, generate_ed25519, load_keyring, load_signing_key
from kneo.bundle.sign import sign_bundle
from kneo.controller.config import ControllerConfig
from kneo.controller.controller import Controller
from kneo.controller.source import GitSource
from kneo.store import open_store

ENVS = {
    "dev": "version: v1\n",
    "staging": "version: v1\npromotion: {require_approved_in: dev}\n",
    "prod": "version: v1\npromotion: {require_approved_in: staging}\n",
}
GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
}


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, env=GIT_ENV, check=True, capture_output=True)


def spec(i: int, version: int = 1) -> dict[str, Any]:
    return {"version": "v1", "agent": {"name": f"agent{i}", "system_prompt": f"v{version} #{i}"}}


def build(root: Path, count: int) -> tuple[Path, Path, Any]:
    keys = root / "keys"
    generate_ed25519("ci", keys)
    trusted = root / "trusted"
    trusted.mkdir()
    (trusted / "ci.pub").write_bytes((keys / "ci.pub").read_bytes())
    key = load_signing_key(keys / "ci.key")
    remote, work = root / "remote.git", root / "work"
    git(root, "init", "--quiet", "--bare", "-b", "main", str(remote))
    git(root, "init", "--quiet", "-b", "main", str(work))
    for env, text in ENVS.items():
        (work / "environments").mkdir(exist_ok=True)
        (work / "environments" / f"{env}.yaml").write_text(text)
    envs = list(ENVS)
    names = -(-count // len(envs))
    written = 0
    for i in range(names):
        for env in envs:
            if written == count:
                break
            write_bundle(work, key, i, env)
            written += 1
    git(work, "add", "-A")
    git(work, "commit", "--quiet", "-m", f"{count} bundles")
    git(work, "push", "--quiet", remote.as_uri(), "HEAD:main")
    return remote, trusted, (work, key)


def write_bundle(work: Path, key: Any, i: int, env: str, version: int = 1) -> None:
    bundle = sign_bundle(
        spec(i, version),
        key,
        name=f"agent{i:04d}",
        environment=env,
        approved_by="bench",
        approved_at=datetime(2026, 1, 1, tzinfo=UTC),
        source=BundleSource(path=f"specs/agent{i}.yaml"),
    )
    path = work / "bundles" / f"agent{i:04d}" / f"{env}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dump_bundle(bundle))


def webhook_rounds(
    root: Path, store: Any, remote: Path, trusted: Path, work: Path, key: Any, rounds: int
) -> dict[str, float]:
    """Commit + push one changed bundle, POST a signed push webhook, wait until it is active.

    The timer starts before the commit (so it includes committing and pushing) and stops when
    the registry serves the new digest. The app runs the controller loop (60 s interval), so
    only the webhook can make it this fast.
    """
    import hashlib
    import hmac
    import statistics

    from starlette.testclient import TestClient

    from kneo.platform import create_platform
    from kneo.service import create_app
    from kneo.settings import Settings

    secret = "bench-webhook-secret"
    settings = Settings.from_env({"KNEO_BENCH_WEBHOOK": secret})
    config = ControllerConfig(
        repo=remote.as_uri(),
        cache_dir=root / "cache-webhook",
        webhook_secret_env="KNEO_BENCH_WEBHOOK",
        name="webhook",
    )
    source = GitSource(remote.as_uri(), ref="main", cache_dir=config.cache_dir)
    ctl = Controller(store, source, load_keyring(trusted), config=config)
    manager = create_platform(settings=settings, store=store)
    app = create_app(
        False,
        settings=settings,
        manager=manager,
        start_worker=False,
        controller=ctl,
        run_controller=True,
    )
    samples: list[float] = []
    with TestClient(app) as client:
        deadline = time.monotonic() + 120
        while ctl.last_result is None and time.monotonic() < deadline:
            time.sleep(0.05)  # the loop's first (warm-up) pass over the whole repository
        for n in range(rounds):
            start = time.perf_counter()
            write_bundle(work, key, 11, "dev", version=100 + n)
            git(work, "commit", "--quiet", "-am", f"webhook round {n}")
            git(work, "push", "--quiet", remote.as_uri(), "HEAD:main")
            body = json.dumps({"ref": "refs/heads/main"}).encode()
            sig = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            response = client.post(
                "/v1/controller/webhook",
                content=body,
                headers={"X-GitHub-Event": "push", "X-Hub-Signature-256": sig},
            )
            if response.status_code != 202:
                raise SystemExit(f"webhook refused: {response.status_code} {response.text}")
            want = f"v{100 + n} #11"
            while time.perf_counter() - start < 30:
                active = store.registry.get_active("agent0011", "dev")
                if active is not None and active.spec["agent"]["system_prompt"] == want:
                    break
                time.sleep(0.005)
            else:
                raise SystemExit("webhook round never became active")
            samples.append(time.perf_counter() - start)
    return {
        "median": round(statistics.median(samples), 3),
        "max": round(max(samples), 3),
        "rounds": len(samples),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundles", type=int, default=1000)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--webhook-rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        remote, trusted, (work, key) = build(root, args.bundles)
        build_s = time.perf_counter() - t0
        store = open_store(f"sqlite:///{root / 'kneo.sqlite'}")
        config = ControllerConfig(repo=remote.as_uri(), cache_dir=root / "cache")
        source = GitSource(remote.as_uri(), ref="main", cache_dir=config.cache_dir)
        ctl = Controller(store, source, load_keyring(trusted), config=config)

        def timed() -> tuple[float, Any]:
            start = time.perf_counter()
            result = ctl.reconcile_once()
            if not result.ok:
                raise SystemExit(f"reconcile failed: {result.error}")
            return time.perf_counter() - start, result

        cold_s, cold = timed()
        noop_s, noop = timed()
        write_bundle(work, key, 7, "dev", version=2)
        git(work, "commit", "--quiet", "-am", "change one bundle")
        git(work, "push", "--quiet", remote.as_uri(), "HEAD:main")
        incr_s, incr = timed()
        active = len(store.registry.list_registry().items)
        webhook_s = webhook_rounds(root, store, remote, trusted, work, key, args.webhook_rounds)
        source.close()
        store.close()
    report = {
        "bundles": args.bundles,
        "build_repo_seconds": round(build_s, 2),
        "cold_seconds": round(cold_s, 3),
        "cold_counts": cold.counts(),
        "noop_seconds": round(noop_s, 3),
        "noop_writes": len(noop.written),
        "incremental_seconds": round(incr_s, 3),
        "incremental_verified": incr.stats["verified"],
        "incremental_writes": len(incr.written),
        "cold_stage_seconds": cold.stats["seconds"],
        "incremental_stage_seconds": incr.stats["seconds"],
        "active_revisions": active,
        "webhook_commit_to_active_seconds": webhook_s,
        "targets": {
            "cold_seconds": 10.0,
            "incremental_seconds": 0.2,
            "webhook_commit_to_active_seconds": 1.0,
        },
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for k, v in report.items():
            print(f"{k:<24} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
