"""What the runs of each side of a rollout add up to: the counters' sums as
:class:`SideFigures`, the p95 latency from their log-scale buckets (:func:`latency_bucket`,
5 % wide; reported at the bucket's geometric middle, within 2.5 % of the exact value).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from kneo.store.rollouts.tables import COUNTERS, MOVING, NO_LATENCY, rollout_sums, rollouts

#: the counters a kind of human request has
_DECISION_COUNTERS = ("decided", "rejected", "edited", "escalated")
_R = rollouts.c
_S = rollout_sums.c


@dataclass(frozen=True)
class KindFigures:
    """The decisions on one kind of human request (``approval``, ``review`` ...)."""

    decided: int = 0
    rejected: int = 0
    edited: int = 0
    escalated: int = 0


@dataclass(frozen=True)
class SideFigures:
    """What the rows of one side (``canary``/``stable``) of a rollout add up to."""

    runs: int = 0
    finished: int = 0
    failed: int = 0
    decided: int = 0
    rejected: int = 0
    edited: int = 0
    escalated: int = 0
    p95_latency_ms: float | None = None
    cost: float = 0.0
    #: finished runs whose cost is known (``cost`` sums theirs): a run with an unpriced
    #: model call has no cost, and counts in neither ``cost`` nor a mean (never as 0)
    priced: int = 0
    #: the decision counters by kind of request (those counted before 0035 in none)
    kinds: Mapping[str, KindFigures] = dataclasses.field(default_factory=dict)
    #: runs a model judge judged, and how many it passed (``rollout_judgements``)
    judged: int = 0
    judge_passed: int = 0


#: the ratio between a latency bucket's bounds
BUCKET_RATIO = 1.05


def latency_bucket(latency_ms: int | None) -> int | None:
    """The log-scale bucket of a latency (bucket ``b`` holds ``[1.05**b, 1.05**(b+1))``
    milliseconds, after one added so zero has one)."""
    if latency_ms is None:
        return None
    return int(math.log(max(0, latency_ms) + 1) / math.log(BUCKET_RATIO))


def _p95(buckets: Sequence[tuple[int, int]]) -> float | None:
    """The nearest-rank p95 of ``(bucket, count)`` in bucket order, at the bucket's
    geometric middle."""
    total = sum(count for _, count in buckets)
    if not total:
        return None
    rank = -(-95 * total // 100)
    seen = 0
    for bucket, count in buckets:
        seen += count
        if seen >= rank:
            return max(0.0, float(BUCKET_RATIO ** (bucket + 0.5)) - 1)
    return None  # pragma: no cover - the counts add up to total


def counter_sums() -> sa.Select[Any]:
    """The counters of rollouts by ``(rollout_id, track, bucket, kind)``, in that order."""
    key = (_S.rollout_id, _S.track, _S.bucket, _S.kind)
    return sa.select(*key, *(sa.func.sum(_S[n]) for n in COUNTERS)).group_by(*key).order_by(*key)


def moving_sums() -> sa.Select[Any]:
    """:func:`counter_sums` of every moving rollout of every project (``/metrics``' gauges)."""
    moving = sa.select(_R.rollout_id).where(_R.status.in_(MOVING))
    return counter_sums().where(_S.rollout_id.in_(moving))


def fold_sums(rows: Iterable[Sequence[Any]]) -> dict[str, SideFigures]:
    """Each side's figures from one rollout's :func:`counter_sums` rows (``rollout_id, track,
    bucket, kind, *counters``) in bucket order; a side without rows is all zero."""
    sums: dict[str, list[float]] = {}
    kinds: dict[str, dict[str, list[int]]] = {}
    buckets: dict[str, list[tuple[int, int]]] = {}
    at = {n: i for i, n in enumerate(COUNTERS)}
    for _, track, bucket, kind, *counts in rows:
        into = sums.setdefault(str(track), [0.0] * len(COUNTERS))
        for i, value in enumerate(counts):
            into[i] += float(value or 0)
        if kind:
            of_kind = kinds.setdefault(str(track), {}).setdefault(str(kind), [0] * 4)
            for i, name in enumerate(_DECISION_COUNTERS):
                of_kind[i] += int(counts[at[name]] or 0)
        if bucket != NO_LATENCY and counts[1]:
            buckets.setdefault(str(track), []).append((int(bucket), int(counts[1])))
    out: dict[str, SideFigures] = {"canary": SideFigures(), "stable": SideFigures()}
    for track, counts in sums.items():
        runs, done, bad, decided, rejected, edited, escalated, cost, priced = counts
        out[track] = SideFigures(
            runs=int(runs), finished=int(done), failed=int(bad), decided=int(decided),
            rejected=int(rejected), edited=int(edited), escalated=int(escalated),
            p95_latency_ms=_p95(buckets.get(track, [])), cost=cost, priced=int(priced),
            kinds={k: KindFigures(*v) for k, v in sorted(kinds.get(track, {}).items())},
        )  # fmt: skip
    return out
