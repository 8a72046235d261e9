"""Helpers: real Git repositories (a bare remote reached by file:// and a working clone),
signing keys, signed bundles, and a real SQLite store (PostgreSQL when configured)."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from kneo.bundle import BundleSource, dump_bundle, generate_ed25519, load_keyring, load_signing_key
from kneo.bundle.keys import Keyring, SigningKey
from kneo.bundle.policy_approval import approval_path, dump_policy_approval, sign_policy_approval
from kneo.bundle.sign import sign_bundle
from kneo.clock import ManualClock
from kneo.controller.config import ControllerConfig
from kneo.controller.controller import Controller
from kneo.controller.promotion import task_id
from kneo.controller.source import GitSource
from kneo.policy.floors import Floors
from kneo.policy.ratchet import checkout_policy, policy_digest
from kneo.settings import Settings
from kneo.store import Store, open_store
from tests import leftovers

SIGNED_AT = datetime(2026, 1, 1, tzinfo=UTC)
GIT_ENV = {
    "GIT_AUTHOR_NAME": "ci",
    "GIT_AUTHOR_EMAIL": "ci@example.invalid",
    "GIT_COMMITTER_NAME": "ci",
    "GIT_COMMITTER_EMAIL": "ci@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def spec(prompt: str = "hello") -> dict[str, Any]:
    return {"version": "v1", "agent": {"name": "helper", "system_prompt": prompt}}


class Repo:
    """A working clone that commits and pushes to a bare ``file://`` remote."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.remote_path = root / "remote.git"
        self.work = root / "work"
        self._git(root, "init", "--quiet", "--bare", "-b", "main", str(self.remote_path))
        self._git(root, "clone", "--quiet", self.url, str(self.work))
        self._git(self.work, "checkout", "--quiet", "-B", "main")

    @property
    def url(self) -> str:
        return self.remote_path.as_uri()

    def _git(self, cwd: Path, *args: str) -> str:
        env = {**os.environ, **GIT_ENV}
        out = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)
        if out.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} failed: {out.stderr}")
        return out.stdout.strip()

    def git(self, *args: str) -> str:
        return self._git(self.work, *args)

    def git_at(self, cwd: Path, *args: str) -> str:
        return self._git(cwd, *args)

    def write(self, path: str, content: str | bytes) -> None:
        target = self.work / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8")

    def remove(self, path: str) -> None:
        self.git("rm", "--quiet", "-r", path)

    def commit(self, message: str = "change", *, push: bool = True) -> str:
        self.git("add", "-A")
        self.git("commit", "--quiet", "--allow-empty", "-m", message)
        sha = self.git("rev-parse", "HEAD")
        if push:
            self.git("push", "--quiet", "--force", "origin", "HEAD:main")
        return sha


class Keys:
    def __init__(self, root: Path) -> None:
        self.trusted_dir = root / "trusted"
        self.other_dir = root / "untrusted"
        self.private: dict[str, SigningKey] = {}
        for key_id in ("ci", "release"):
            generate_ed25519(key_id, root / "private")
            self.private[key_id] = load_signing_key(root / "private" / f"{key_id}.key")
            self.trusted_dir.mkdir(exist_ok=True)
            (self.trusted_dir / f"{key_id}.pub").write_bytes(
                (root / "private" / f"{key_id}.pub").read_bytes()
            )
        generate_ed25519("ci", self.other_dir)  # same id, different key: a forger's key
        self.forged = load_signing_key(self.other_dir / "ci.key")

    def keyring(self) -> Keyring:
        return load_keyring(self.trusted_dir)

    def bundle(
        self,
        name: str,
        env: str,
        body: dict[str, Any] | None = None,
        *,
        key: str | SigningKey = "ci",
        cosign: str | None = None,
    ) -> str:
        signing = key if isinstance(key, SigningKey) else self.private[key]
        bundle = sign_bundle(
            body or spec(),
            signing,
            name=name,
            environment=env,
            approved_by="ci-pipeline",
            approved_at=SIGNED_AT,
            source=BundleSource(path=f"specs/{name}.yaml"),
        )
        if cosign:
            from kneo.bundle.sign import cosign as add_signature

            bundle = add_signature(bundle, self.private[cosign])
        return dump_bundle(bundle)


def sign_policy(repo: Repo, keys: Keys, env: str, *key_ids: str) -> str:
    """What ``kneo policy sign`` writes: ``env``'s policy in the working tree (or its
    removal) signed by ``key_ids``, in ``environments/approvals/<env>.json``."""
    digest = policy_digest(env, checkout_policy(repo.work, env))
    target = repo.work / approval_path(env)
    existing = target.read_bytes() if target.exists() else None
    for key_id in key_ids:
        approval = sign_policy_approval(
            env,
            digest,
            keys.private[key_id],
            approved_by="release-team",
            approved_at=SIGNED_AT,
            existing=existing,
        )
        existing = dump_policy_approval(approval).encode()
    assert existing is not None
    repo.write(approval_path(env), existing)
    return digest


ENV_FILES = {
    "dev": "version: v1\n",
    "staging": "version: v1\npromotion: {require_approved_in: dev}\n",
    "prod": (
        "version: v1\npromotion:\n  require_approved_in: staging\n  require_human_approval: true\n"
        "  approvers: [alice, bob, carol]\n  min_approvals: 1\nruns: {require_approved_bundle: true}\n"
    ),
}


def make_controller(
    store: Any,
    repo: Repo,
    keys: Keys,
    clock: ManualClock,
    tmp_path: Path,
    floors: Floors | None = None,
    **config: Any,
) -> Controller:
    cfg = ControllerConfig(repo=repo.url, cache_dir=tmp_path / "cache", **config)
    source = GitSource(repo.url, ref="main", cache_dir=cfg.cache_dir)
    leftovers.close_after_test(source.close)  # it reopens if a later test uses it
    return Controller(store, source, keys.keyring(), config=cfg, clock=clock, floors=floors)


def promotion_waiting(root: Path, prod: str) -> tuple[Store, Controller, str]:
    """mailer r1 active in staging, its promotion to prod waiting for the approvers the
    ``prod`` policy names; the store, the controller and the promotion task's id."""
    store = open_store(None, settings=Settings.from_env({}), state_dir=root / "state")
    repo, keys = Repo(root / "git"), Keys(root / "keys")
    repo.write("environments/staging.yaml", "version: v1\n")
    repo.write("environments/prod.yaml", prod)
    for env in ("staging", "prod"):
        agent = {"version": "v1", "agent": {"name": "mailer", "system_prompt": "Be brief."}}
        repo.write(f"bundles/mailer/{env}.json", keys.bundle("mailer", env, agent))
    repo.commit("mailer r1")
    controller = make_controller(store, repo, keys, ManualClock(), root)
    assert controller.reconcile_once().ok
    return (
        store,
        controller,
        task_id("mailer", "prod", store.registry.get_active("mailer", "staging").digest),
    )


DOC = json.loads((Path(__file__).resolve().parents[2] / "docs" / "openapi.json").read_text())


def documented(operation_id: str, answer: Any) -> dict[str, Any]:
    """``answer``'s JSON after validating it against the committed document's answer."""
    [operation] = [
        op for item in DOC["paths"].values() for op in item.values()
        if op["operationId"] == operation_id
    ]  # fmt: skip
    assert str(answer.status_code) in operation["responses"], (operation_id, answer.text)
    schema = operation["responses"][str(answer.status_code)]["content"]["application/json"]
    validator = Draft202012Validator({**schema["schema"], "components": DOC["components"]})
    errors = [e.message for e in validator.iter_errors(answer.json())]
    assert not errors, (operation_id, errors)
    return dict(answer.json())
