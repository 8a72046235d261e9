"""The rollout page's chart: the figures' history (:mod:`kneo.controller.rollout_history`)
as the points of a few lines on a 0-100 % scale, which the template draws as inline SVG
(no script, no image request): the canary's share of new runs, and each side's failure and
rejection rates. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["HEIGHT", "WIDTH", "chart"]

WIDTH = 480
HEIGHT = 140
#: the margin inside the box, in SVG units
PAD = 6
#: (line, side, figure, label): what the chart draws; side ``None``: the point itself
LINES = (
    ("weight", None, "weight", "canary share"),
    ("canary-failure", "canary", "failure_rate", "canary failure"),
    ("stable-failure", "stable", "failure_rate", "stable failure"),
    ("canary-rejection", "canary", "rejection_rate", "canary rejection"),
    ("stable-rejection", "stable", "rejection_rate", "stable rejection"),
)


def _percent(point: Mapping[str, Any], side: str | None, figure: str) -> float | None:
    holder = point if side is None else point.get(side) or {}
    value = holder.get(figure)
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    return float(value) if side is None else float(value) * 100


def chart(history: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The lines to draw (each ``{"name", "label", "points"}``, ``points`` an SVG
    ``points`` attribute) and the first and last times; ``None`` under two points."""
    if len(history) < 2:
        return None
    step = (WIDTH - 2 * PAD) / (len(history) - 1)
    lines = []
    for name, side, figure, label in LINES:
        points = []
        for i, point in enumerate(history):
            value = _percent(point, side, figure)
            if value is None:
                continue
            y = HEIGHT - PAD - (min(max(value, 0.0), 100.0) / 100) * (HEIGHT - 2 * PAD)
            points.append(f"{PAD + i * step:.1f},{y:.1f}")
        if len(points) >= 2:
            lines.append({"name": name, "label": label, "points": " ".join(points)})
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "lines": lines,
        "first": str(history[0].get("at") or ""),
        "last": str(history[-1].get("at") or ""),
        "count": len(history),
    }
