"""Rollouts and their runs' figures: ``rollouts``, ``rollout_sums`` (migration 0030),
``rollout_judgements`` (0036).

``rollouts``: one row per rollout of a bundle in an environment (the controller's: a
promotion under a ``rollout:`` policy), where it stands (step, canary share, status) and
what it decided (reason, figures). The newest row of a bundle and environment is the one
admission reads for each new run of it (one indexed point read).

``rollout_sums``: what the runs of each side of a rollout add up to, kept as counters the
run's own transactions move: the one that creates a run counts it, the one that finishes it
its outcome, latency and cost, the ones that decide its human requests their decisions
(:class:`~kneo.store.rollouts.writes.RolloutRunWrites`). Each write adds to one of
:data:`~kneo.store.rollouts.tables.SHARDS` rows per side and latency bucket, picked at
random, so concurrent runs of one rollout seldom wait on the same row; the analysis
(:meth:`~kneo.store.rollouts.facet.RolloutFacet.figures`) adds up at most
``2 x SHARDS x (buckets + 1)`` rows, however many runs the rollout had. The p95 latency: a
settled run's latency is counted in a bucket of a log scale
(:func:`~kneo.store.rollouts.figures.latency_bucket`, 5 % wide; bucket ``-1``: no latency),
and the p95 is the bucket where the running count passes 95 % (nearest rank), reported at
the bucket's geometric middle: within 2.5 % of the exact value.

``rollout_judgements``: a model judge's verdict on a sampled finished run of a rollout
(:mod:`kneo.platform.rollout_judge`), one row per rollout and run (a run is judged once: a
second insert writes nothing), counted per side with the figures.

The room's modules: its tables, on the store's metadata (no other room reads or writes
them; :mod:`~kneo.store.rollouts.tables`), a rollout as callers see it
(:mod:`~kneo.store.rollouts.records`), the figures the counters add up to
(:mod:`~kneo.store.rollouts.figures`), ``store.rollouts`` (:mod:`~kneo.store.rollouts.facet`)
and a transaction's writes (:mod:`~kneo.store.rollouts.writes`); this package names their
public names (``kneo.store.rollouts.RolloutFacet``), as before the room was split.
"""

from __future__ import annotations

from kneo.store.rollouts.facet import RolloutFacet
from kneo.store.rollouts.figures import (
    KindFigures,
    SideFigures,
    fold_sums,
    latency_bucket,
    moving_sums,
)
from kneo.store.rollouts.records import JudgeCandidate, RolloutChanges, RolloutRecord, RolloutRoute
from kneo.store.rollouts.tables import (
    JUDGE_REASON_CHARS,
    MOVING,
    rollout_judgements,
    rollout_sums,
    rollouts,
)
from kneo.store.rollouts.writes import RolloutRunWrites

__all__ = [
    "JUDGE_REASON_CHARS",
    "MOVING",
    "JudgeCandidate",
    "KindFigures",
    "RolloutChanges",
    "RolloutFacet",
    "RolloutRecord",
    "RolloutRoute",
    "RolloutRunWrites",
    "SideFigures",
    "fold_sums",
    "latency_bucket",
    "moving_sums",
    "rollout_judgements",
    "rollout_sums",
    "rollouts",
]
