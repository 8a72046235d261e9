"""Controller configuration: flags over the ``controller:`` block of ``.kneo/config.yaml``.

```yaml
controller:
  repo: https://github.com/acme/agents.git   # or a local repository path
  branch: main                                # a branch or a tag
  interval: 60                                # poll seconds
  trusted_keys: /etc/kneo/keys                # keyring dir; never taken from the watched repo
  policy_floors: /etc/kneo/floors.yaml        # minimums per environment (or KNEO_SERV_POLICY_FLOORS)
  prune: true
  allow_empty: false                          # prune even when a commit holds no bundles
  cache_dir: ~/.cache/kneo/controller
  webhook_secret_env: KNEO_WEBHOOK_SECRET     # name of the variable holding the secret
  trusted_hmac_keys: {ci-hmac: KNEO_CI_HMAC}  # HMAC key id -> variable holding its secret
  lease_seconds: 30                           # leader lock lease
  poll_seconds: 1                             # standby lock checks (SQLite: request polls)
  path: teams/payments                        # the repository subdirectory read (default: root)
```

The trusted keyring is the controller's own: a path on the controller's machine, so a pull
request to the watched repository can never add a key.

The host's block is the ``default`` project's source. Another project's source is the
``controller:`` block of its definition, written by a platform administrator
(:func:`project_source`): its trust (keys, HMAC keys, floors) comes from there or the host,
never from the watched repository, and its leadership is the host controller's (one leader
reconciles every project: :mod:`kneo.controller.projects`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from kneo.documents import load_yaml_file
from kneo.errors import ConfigError, SpecError
from kneo.spec.project_blocks import ControllerConfigBlock

#: The typed ``controller:`` block (one model for the project config schema and here).
_Block = ControllerConfigBlock


@dataclass(frozen=True)
class ControllerConfig:
    repo: str | None = None
    branch: str | None = None
    interval: float = 60.0
    trusted_keys: Path | None = None
    #: Per-environment policy minimums (:mod:`kneo.policy.floors`); never from the repo.
    policy_floors: Path | None = None
    prune: bool = True
    allow_empty: bool = False
    cache_dir: Path | None = None
    webhook_secret_env: str | None = None
    #: How long the leader's lock lasts without renewal; standbys take over after it.
    lease_seconds: float = 30.0
    #: How often a standby checks the leader lock (and, on SQLite, the leader looks for
    #: queued reconcile requests): a crashed leader is replaced within lease + poll.
    poll_seconds: float = 1.0
    #: Controller status row and leader lock name (one per watched repository).
    name: str = "default"
    #: HMAC trusted keys: key id -> name of the variable holding the secret (never the value).
    trusted_hmac_key_env: Mapping[str, str] = field(default_factory=dict)
    #: The repository subdirectory holding ``bundles/`` and ``environments/`` (``None``: root).
    path: str | None = None
    #: The leader lock when it is not this controller's own (``controller:<name>``): a
    #: project's source is led under the host controller's lock.
    lock: str | None = None

    @property
    def lock_name(self) -> str:
        """The leader lock a controller of this configuration runs under."""
        return self.lock or f"controller:{self.name}"

    def with_overrides(self, **values: Any) -> ControllerConfig:
        """Flags win over the file; ``None`` means "not given"."""
        known = {f.name for f in fields(self)}
        given = {k: v for k, v in values.items() if v is not None and k in known}
        if "trusted_hmac_key_env" in given:  # flags add to (and override) the file's keys
            given["trusted_hmac_key_env"] = {
                **self.trusted_hmac_key_env,
                **given["trusted_hmac_key_env"],
            }
        for key in ("trusted_keys", "cache_dir", "policy_floors"):
            if isinstance(given.get(key), str):
                given[key] = Path(given[key]).expanduser()
        return replace(self, **given)

    def require_repo(self) -> str:
        if not self.repo:
            raise ConfigError(
                "no repository to watch: pass --repo URL_OR_PATH or set controller.repo in "
                ".kneo/config.yaml",
                field="controller.repo",
            )
        return self.repo


def from_mapping(
    block: Mapping[str, Any] | None, *, base_dir: Path | None = None
) -> ControllerConfig:
    """A config from a ``controller:`` mapping; relative paths resolve against ``base_dir``."""
    try:
        parsed = _Block.model_validate(dict(block or {}))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(
            f"controller.{where}: {first['msg']}", field=f"controller.{where}"
        ) from None

    def path(value: str | None) -> Path | None:
        if value is None:
            return None
        p = Path(value).expanduser()
        return p if p.is_absolute() or base_dir is None else base_dir / p

    repo = parsed.repo
    if (
        repo
        and base_dir is not None
        and "://" not in repo
        and not Path(repo).is_absolute()
        and "@" not in repo
    ):
        repo = str(base_dir / repo)
    return ControllerConfig(
        repo=repo,
        branch=parsed.branch,
        interval=parsed.interval,
        trusted_keys=path(parsed.trusted_keys),
        policy_floors=path(parsed.policy_floors),
        prune=parsed.prune,
        allow_empty=parsed.allow_empty,
        cache_dir=path(parsed.cache_dir),
        webhook_secret_env=parsed.webhook_secret_env,
        lease_seconds=parsed.lease_seconds,
        poll_seconds=parsed.poll_seconds,
        name=parsed.name,
        trusted_hmac_key_env=dict(parsed.trusted_hmac_keys),
        path=parsed.path,
    )


def project_source(
    block: ControllerConfigBlock | None, *, base_dir: Path, host: ControllerConfig
) -> ControllerConfig:
    """A project's source: the ``controller:`` block of its definition (``None``: it has
    none, so ``repo`` is ``None``), relative paths against the project's root ``base_dir``.

    What the host decides for every project: the leader lock, its lease and poll (one
    leader reconciles every project), and, where the block names none, the fetch cache and
    the policy floors (``KNEO_SERV_POLICY_FLOORS`` wins over both, as for the host). Trusted
    keys and the webhook secret are the block's alone: a project trusts no key of the
    host's and answers no webhook signed with the host's secret."""
    config = from_mapping(block.model_dump() if block is not None else None, base_dir=base_dir)
    return replace(
        config,
        lock=host.lock_name,
        lease_seconds=host.lease_seconds,
        poll_seconds=host.poll_seconds,
        cache_dir=config.cache_dir or host.cache_dir,
        policy_floors=config.policy_floors or host.policy_floors,
    )


def load_controller_config(project_config: Path | None) -> ControllerConfig:
    """The ``controller:`` block of a project config file (defaults when absent)."""
    if project_config is None or not os.path.lexists(project_config):
        return ControllerConfig()
    try:
        data = load_yaml_file(project_config, what="project config") or {}
    except SpecError as exc:
        raise ConfigError(
            f"cannot read {project_config}: {exc.message}",
            file=str(project_config),
            reason=exc.code,
        ) from None
    block = data.get("controller") if isinstance(data, dict) else None
    root = project_config.resolve().parent
    if root.name == ".kneo":
        root = root.parent
    return from_mapping(block if isinstance(block, dict) else None, base_dir=root)
