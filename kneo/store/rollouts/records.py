"""A rollout as callers see it (:class:`RolloutRecord`), what moving one may change, what a
new run's split needs of it and a run a judge may judge.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict


class RolloutChanges(TypedDict, total=False):
    """What moving a rollout may change
    (:meth:`~kneo.store.rollouts.writes.RolloutRunWrites.move_rollout`)."""

    status: str
    step: int
    weight: int
    reason: str | None
    figures: Mapping[str, Any] | None
    step_started_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True)
class RolloutRecord:
    rollout_id: str
    bundle_name: str
    environment: str
    stable_revision: int
    canary_revision: int
    canary_digest: str | None
    commit: str | None
    status: str
    step: int
    weight: int
    policy: Mapping[str, Any]
    reason: str | None
    figures: Mapping[str, Any] | None
    started_at: datetime
    step_started_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    version: int

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for name in ("started_at", "step_started_at", "updated_at", "finished_at"):
            value = out[name]
            out[name] = value.isoformat() if value is not None else None
        return out


@dataclass(frozen=True)
class JudgeCandidate:
    """A finished run of a rollout's bundle a judge may judge: which, on what revision, and
    when it settled (with ``run_id``, the keyset position of
    :meth:`~kneo.store.rollouts.facet.RolloutFacet.unjudged_runs`)."""

    run_id: str
    bundle_revision: int
    settled_at: datetime


@dataclass(frozen=True)
class RolloutRoute:
    """What a new run's split needs of a bundle's newest rollout."""

    rollout_id: str
    status: str
    weight: int
    stable_revision: int
    canary_revision: int


def rollout_record(row: Mapping[str, Any]) -> RolloutRecord:
    """A ``rollouts`` row (or the values inserted as one) as its record."""
    names = {f.name for f in dataclasses.fields(RolloutRecord)}
    return RolloutRecord(**{k: v for k, v in row.items() if k in names})
