"""The counters rollout runs move and the figures the analysis reads back, on known data."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.dialects import sqlite

from kneo.store.rollouts import KindFigures, latency_bucket
from kneo.store.rollouts.facet import serving_statement


def test_figures_add_up_what_the_runs_counted(store: Any) -> None:
    canary = {"id": "ro_1", "track": "canary"}
    stable = {"id": "ro_1", "track": "stable"}
    other = {"id": "ro_2", "track": "canary"}
    with store.transaction() as tx:
        for i in range(1, 101):  # latencies 10, 20, ... 1000 ms: p95 (nearest rank) 950
            tx.note_rollout(canary, started=True)
            tx.note_rollout(
                canary, status="failed" if i % 10 == 0 else "succeeded", latency_ms=i * 10, cost=0.5
            )
        tx.note_rollout(
            canary,
            decisions=[("approval", "rejected"), ("review", "edited"), ("approval", "approved")],
            escalated=["input"],
        )
        tx.note_rollout(canary, decisions=[("approval", "rejected")])
        for _ in range(3):
            tx.note_rollout(stable, started=True)
        tx.note_rollout(stable, status="cancelled", latency_ms=5)  # neither finished nor failed
        tx.note_rollout(
            stable, status="succeeded", latency_ms=5, cost=None
        )  # its cost unknown: not 0
        tx.note_rollout(other, started=True)
    sides = store.rollouts.figures("ro_1")
    c, s = sides["canary"], sides["stable"]
    assert (c.runs, c.finished, c.failed) == (100, 100, 10)
    assert (c.decided, c.rejected, c.edited, c.escalated) == (4, 2, 1, 1)
    assert c.kinds == {  # the same decisions by kind of request
        "approval": KindFigures(decided=3, rejected=2),
        "input": KindFigures(escalated=1),
        "review": KindFigures(decided=1, edited=1),
    }
    assert c.cost == pytest.approx(50.0) and c.priced == 100
    assert c.p95_latency_ms is not None and abs(c.p95_latency_ms - 950) / 950 < 0.025
    assert (s.runs, s.finished, s.cost, s.priced) == (3, 1, 0.0, 0)
    assert store.rollouts.figures("ro_none")["canary"].runs == 0


def test_latency_buckets_are_five_percent_wide() -> None:
    assert latency_bucket(None) is None and latency_bucket(0) == 0
    assert latency_bucket(1000) == latency_bucket(1010)
    assert latency_bucket(1000) < latency_bucket(1100)


def test_the_serving_read_names_the_active_status_as_a_literal() -> None:
    """A bound value a partial index's predicate depends on (``status = 'active'``) makes
    SQLite prepare the statement again at every execution (5x the read's cost here): the
    split every bundle run's start makes writes it as a literal, as the registry's reads do."""
    sql = str(serving_statement().compile(dialect=sqlite.dialect()))
    assert "bundle_revisions.status = 'active'" in sql
