"""A rollout's figures over time: a bounded history kept with the rollout itself.

Each pass of the controller that reads a moving rollout's figures may add one point to the
``history`` list of the rollout's ``figures`` (the same JSON that holds the last analysis):
at most one point per :data:`EVERY_SECONDS`, and at most :data:`MAX_POINTS` of them (the
oldest dropped), so the history of a rollout that runs for weeks stays a few kilobytes. A
point holds, per side, what the console's chart draws: runs and finished runs, the failure,
rejection and edit rates, the p95 latency and the cost per run, and the canary's share then.

Reconcile layer, pure: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

__all__ = ["EVERY_SECONDS", "MAX_POINTS", "POINT_FIELDS", "due", "with_point"]

#: the least time between two points of one rollout's history
EVERY_SECONDS = 60
#: the most points a rollout keeps (the oldest go first)
MAX_POINTS = 120
#: what a point keeps of each side's figures (:meth:`Figures.to_dict`)
POINT_FIELDS = (
    "runs",
    "finished",
    "failure_rate",
    "rejection_rate",
    "edit_rate",
    "p95_latency_ms",
    "cost_per_run",
)


def history_of(figures: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The points a rollout's ``figures`` hold (oldest first)."""
    found = (figures or {}).get("history")
    return [dict(p) for p in found] if isinstance(found, list) else []


def due(figures: Mapping[str, Any] | None, now: datetime) -> bool:
    """Whether a point taken ``now`` goes into the history (the last is old enough)."""
    points = history_of(figures)
    if not points:
        return True
    try:
        last = datetime.fromisoformat(str(points[-1]["at"]))
    except (KeyError, ValueError):
        return True
    return (now - last).total_seconds() >= EVERY_SECONDS


def with_point(
    figures: Mapping[str, Any] | None,
    sides: Mapping[str, Mapping[str, Any]],
    *,
    weight: int,
    now: datetime,
) -> dict[str, Any]:
    """``figures`` with a point of ``sides`` (each :meth:`Figures.to_dict`) at ``now`` added
    to its history (bounded by :data:`MAX_POINTS`); its other keys are kept."""
    point: dict[str, Any] = {"at": now.isoformat(), "weight": weight}
    for side, values in sides.items():
        point[side] = {name: values.get(name) for name in POINT_FIELDS}
    points = [*history_of(figures), point][-MAX_POINTS:]
    return {**dict(figures or {}), "history": points}
