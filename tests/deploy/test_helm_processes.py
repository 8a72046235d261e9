"""The chart's rendered objects started as processes, as a kubelet would start their pods.

``helm install`` needs a cluster, which this machine has none of; what stands in: each
rendered workload (the migration Job, then the API, worker and controller Deployments) is
started as ``kneo`` with the container's arguments, its ``$(VAR)`` references expanded, and
exactly the environment the pod would get: the ConfigMap's data (``envFrom``) plus the keys
of a Secret holding every secret Kneo knows (``secretKeyRef``, optional ones skipped when
absent). Where a pod has its own network and volumes, the processes share one machine: the
ports become free loopback ports and the mounted paths temporary directories. Each must come
up ready, and none may hold a secret its role does not read.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx2
import pytest

from kneo.envcheck import ROLE_SECRETS
from tests import http_calls
from tests.cli_zygote import KNEO
from tests.deploy import helm_chart
from tests.deploy.prometheus_server import free_port

ROOT = Path(__file__).resolve().parents[2]
ADMIN = "planted-admin-key-0123456789abcdef"
#: A value for every secret any role reads, each one findable in a process's environment.
PLANTED = {
    "KNEO_SERV_API_KEYS": "operator:planted-operator-key-0123456789:operator",
    "KNEO_SERV_ADMIN_API_KEY": ADMIN,
    "KNEO_SERV_CONSOLE_SECRET": "planted-console-secret-0123456789",
    "KNEO_SERV_WEBHOOK_SECRET": "planted-webhook-secret-0123456789",
    "KNEO_SERV_SPEC_SIGNING_KEY": "planted-signing-key-0123456789ab",
    "KNEO_SERV_A2A_PUSH_SECRET": "planted-a2a-push-secret-012345678",
    "KNEO_SERV_GIT_TOKEN": "planted-git-token-0123456789abcdef",
    "OPENAI_API_KEY": "planted-openai-key-0123456789abcdef",
}


def _pod_environment(
    doc: dict[str, Any], configmaps: dict[str, Any], secret: dict[str, str]
) -> dict[str, str]:
    [container] = doc["spec"]["template"]["spec"]["containers"]
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        ref = source["configMapRef"]
        if ref["name"] in configmaps:
            env.update(configmaps[ref["name"]])
        else:
            assert ref.get("optional"), ref
    for entry in container.get("env", []):
        source = entry["valueFrom"]
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            if ref["key"] in secret:
                env[entry["name"]] = secret[ref["key"]]
            else:
                assert ref.get("optional"), f"{ref['key']} is required but not in the Secret"
        else:
            ref = source["configMapKeyRef"]
            env[entry["name"]] = configmaps[ref["name"]][ref["key"]]
    return env


def _expand(arg: str, env: dict[str, str]) -> str:
    """The kubelet's ``$(VAR)`` expansion of container arguments."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), arg)


def _ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            if http_calls.get(url, timeout=1.0).status_code == 200:
                return
        except httpx2.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} never answered 200: {log.read_text()[-3000:]}")


@pytest.fixture
def gitops_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "agents"
    repo.mkdir()
    (repo / "environments").mkdir()
    (repo / "environments" / "dev.yaml").write_text("version: v1\n")
    for argv in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-qm", "environments"]):
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *argv],
            cwd=repo, check=True, capture_output=True,
        )  # fmt: skip
    return repo


def _environ_of(pid: int) -> str:
    """The process's environment, once it has one: read at once after the fork, before the
    exec, ``/proc/<pid>/environ`` can still be empty."""
    deadline = time.monotonic() + 10
    while True:
        text = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
        if text or time.monotonic() > deadline:
            return text
        time.sleep(0.05)


def test_the_rendered_pods_start_ready_with_only_their_secrets(
    tmp_path: Path, gitops_repo: Path
) -> None:
    docs = helm_chart.render({"controller": {"repo": str(gitops_repo)}})
    configmaps = {d["metadata"]["name"]: d["data"] for d in docs if d["kind"] == "ConfigMap"}
    database = os.environ.get("KNEO_TEST_DATABASE_URL") or f"sqlite:///{tmp_path / 'kneo.sqlite'}"
    secret = {"KNEO_SERV_DATABASE_URL": database, **PLANTED}
    keys = tmp_path / "keys"  # the trusted-keys volume
    keys.mkdir()
    shutil.copy(ROOT / "examples" / "keys" / "demo.pub", keys / "demo.pub")
    work = tmp_path / "work"  # the image's working directory
    work.mkdir()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("KNEO_", "OTEL_"))}
    base.update(PYTHONPATH=str(ROOT), HOME=str(tmp_path))
    for name in PLANTED:
        base.pop(name, None)
    started: list[subprocess.Popen[bytes]] = []
    order = [("Job", "kneo-migrate"), ("Deployment", "kneo-api"),
             ("Deployment", "kneo-worker"), ("Deployment", "kneo-controller")]  # fmt: skip
    objects = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    try:
        for kind, name in order:
            doc = objects[(kind, name)]
            role = "migrate" if kind == "Job" else name.removeprefix("kneo-")
            env = _pod_environment(doc, configmaps, secret)
            metrics = free_port()
            env["KNEO_SERV_METRICS_PORT"] = str(metrics)
            env["KNEO_SERV_METRICS_HOST"] = "127.0.0.1"
            [container] = doc["spec"]["template"]["spec"]["containers"]
            args = [_expand(a, env) for a in container["args"]]
            replaced = {"0.0.0.0": "127.0.0.1", "/etc/kneo/keys": str(keys),
                        "/var/cache/kneo": str(tmp_path / f"cache-{role}")}  # fmt: skip
            args = [replaced.get(a, a) for a in args]
            if role == "api":
                port = free_port()
                args[args.index("--port") + 1] = str(port)
            log = tmp_path / f"{role}.log"
            proc = subprocess.Popen(
                [*KNEO, *args],
                cwd=work, env={**base, **env}, stdout=log.open("wb"), stderr=subprocess.STDOUT,
            )  # fmt: skip
            started.append(proc)
            # only the keys of its role reached it (the Secret held them all)
            given = {n for n in secret if n in env}
            assert given == {n for n in ROLE_SECRETS[role] if n in secret} | (
                {"OPENAI_API_KEY"} if role in ("api", "worker") else set()
            ), role
            environ = _environ_of(proc.pid)
            for other, value in secret.items():
                assert (value in environ) == (other in given), (role, other)
            if role == "migrate":
                assert proc.wait(timeout=120) == 0, log.read_text()[-3000:]
                continue
            url = f"http://127.0.0.1:{port}" if role == "api" else f"http://127.0.0.1:{metrics}"
            _ready(url + "/readyz", proc, log)
            if role == "api":
                whoami = http_calls.get(
                    url + "/v1/version", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=5
                )
                assert whoami.status_code == 200, whoami.text
                assert http_calls.get(url + "/v1/runs", timeout=5).status_code == 401
    finally:
        for proc in started:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in started:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
    logs = "".join(p.read_text() for p in tmp_path.glob("*.log"))
    for value in PLANTED.values():
        assert value not in logs
