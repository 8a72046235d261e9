"""Floors: per-environment minimums the watched repository cannot lower.

They come from the controller's own configuration, never from the repository it watches: a
file named by ``KNEO_SERV_POLICY_FLOORS`` (or ``controller.policy_floors`` in the service's
``.kneo/config.yaml``)::

    version: v1
    environments:
      prod:
        required_signatures: 2
        accepted_key_ids: [ci, release]
        promotion:
          require_human_approval: true
          approvers: [release-managers]
          min_approvals: 2
          refuse_downgrade: true
          freeze:
            - {reason: quarter close, days: [fri], start: "16:00", end: "23:59"}
          require_evals: [{suite: smoke, min_pass_rate: 0.95}]

Each environment's entry is written as an environment file is, and only the fields it sets
are floors. An environment policy is below its floor when :func:`kneo.policy.ratchet.loosened`
of the floor against it names one of those fields (fewer signatures, a key or an approver
the floor does not list, a freeze window of the floor missing, a suite dropped or its rate
lowered, ...); the controller then refuses that policy whole (:mod:`kneo.controller.ratchet`).
Reads the one file it is given.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from kneo.documents import load_yaml_file
from kneo.errors import ConfigError, KneoError
from kneo.names import is_valid_name
from kneo.policy.environment import EnvironmentPolicy
from kneo.policy.ratchet import ENVIRONMENT_RULES, GateChange, loosened


@dataclass(frozen=True)
class Floor:
    """One environment's minimums: the policy and the field paths it sets."""

    environment: str
    policy: EnvironmentPolicy
    paths: frozenset[str]

    def below(self, policy: EnvironmentPolicy) -> list[GateChange]:
        """Where ``policy`` is looser than this floor (empty: it meets it)."""
        return [
            c
            for c in loosened(self.policy, policy)
            if any(c.gate == p or c.gate.startswith(p + ".") for p in self.paths)
        ]

    def to_dict(self) -> dict[str, Any]:
        return self.policy.model_dump(mode="json", by_alias=True, exclude_unset=True)


@dataclass(frozen=True)
class Floors:
    """Every environment's floor, and a digest of them all (a change re-judges everything)."""

    environments: Mapping[str, Floor] = field(default_factory=dict)
    source: str | None = None

    def get(self, environment: str) -> Floor | None:
        return self.environments.get(environment)

    @property
    def digest(self) -> str:
        text = json.dumps({n: f.to_dict() for n, f in self.environments.items()}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


NO_FLOORS = Floors()


def _set_paths(policy: EnvironmentPolicy) -> frozenset[str]:
    """The classified field paths a policy sets (each segment explicitly given)."""
    paths = set()
    for path, rule in ENVIRONMENT_RULES.items():
        if isinstance(rule, str):
            continue
        node: Any = policy
        for part in path.split("."):
            if not isinstance(node, BaseModel) or part not in node.model_fields_set:
                break
            node = getattr(node, part)
        else:
            paths.add(path)
    return frozenset(paths)


def parse_floors(data: object, *, source: str) -> Floors:
    """Floors from a decoded document; ``config_error`` naming the field otherwise."""
    if data is None:
        return Floors(source=source)
    if not isinstance(data, Mapping) or set(data) - {"version", "environments"}:
        raise ConfigError(
            f"{source}: policy floors are a mapping of version and environments",
            field="environments",
            file=source,
        )
    if data.get("version", "v1") != "v1":
        raise ConfigError(f"{source}: version must be v1", field="version", file=source)
    environments = data.get("environments") or {}
    if not isinstance(environments, Mapping):
        raise ConfigError(
            f"{source}: environments must map names to floors", field="environments", file=source
        )
    floors: dict[str, Floor] = {}
    for name, entry in environments.items():
        where = f"environments.{name}"
        if not isinstance(name, str) or not is_valid_name(name):
            raise ConfigError(f"{source}: {name!r} is not an environment name", field=where)
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{source}: {where} must be a mapping", field=where, file=source)
        try:
            policy = EnvironmentPolicy.model_validate({**entry, "environment": name})
        except ValidationError as exc:
            first = exc.errors()[0]
            at = ".".join(str(p) for p in first["loc"])
            raise ConfigError(
                f"{source}: {where}.{at}: {first['msg']}", field=f"{where}.{at}", file=source
            ) from None
        floors[name] = Floor(name, policy, _set_paths(policy))
    return Floors(floors, source)


def load_floors(path: str | os.PathLike[str] | None) -> Floors:
    """The floors file at ``path`` (none: no floors)."""
    if path is None:
        return NO_FLOORS

    where = Path(path)
    try:
        data = load_yaml_file(where, what="policy floors")
    except KneoError as exc:
        raise ConfigError(
            f"cannot read the policy floors {where}: {exc.message}", file=str(where)
        ) from None
    return parse_floors(data, source=str(where))
