"""A moving rollout's sides on ``/metrics``: per revision, what its runs add up to, read from
the counters the analysis reads, scraped by a real Prometheus. SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from kneo import metrics
from kneo.settings import Settings
from tests.deploy.prometheus_server import free_port, running
from tests.rollout.world import World

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def exposed(store: Any) -> Samples:
    body, _ = metrics.render(metrics.exposition_registry(store, Settings.from_env({})))
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def side(track: str, revision: int) -> dict[str, str]:
    return {
        "project": "default",
        "bundle": "helper",
        "environment": "dev",
        "track": track,
        "revision": str(revision),
    }


def test_each_side_of_a_moving_rollout_is_a_series_by_revision(store: Any, tmp_path: Path) -> None:
    w = World(store, tmp_path)
    w.release("good draft")
    assert not [k for k in exposed(store) if k[0].startswith("kneo_rollout")]  # no rollout yet
    w.release("bad draft")
    reviewed: dict[int, int] = {1: 0, 2: 0}
    for i in range(12):
        reviewed[w.review(w.start(f"s-{i}"), reject_revision=2)] += 1
    assert reviewed[1] and reviewed[2]  # both sides took runs
    canary, stable = side("canary", 2), side("stable", 1)
    seen = exposed(store)

    def value(name: str, labels: dict[str, str]) -> float | None:
        return seen.get((name, frozenset(labels.items())))

    weight = {"project": "default", "bundle": "helper", "environment": "dev"}
    assert value("kneo_rollout_canary_weight", weight) == 50
    for labels, track in ((canary, 2), (stable, 1)):
        n = reviewed[track]
        assert value("kneo_rollout_runs", labels) == n
        assert value("kneo_rollout_runs_finished", labels) == n
        rejected = n if track == 2 else 0  # the canary's drafts, each run then fails
        assert value("kneo_rollout_runs_failed", labels) == rejected
        assert value("kneo_rollout_human_decisions", labels) == n
        assert value("kneo_rollout_human_rejections", labels) == rejected
        latency = value("kneo_rollout_p95_latency_seconds", labels)
        assert latency is not None and latency >= 0
    # the figures are the analysis's own
    figures = store.rollouts.figures(w.rollout().rollout_id)
    assert value("kneo_rollout_runs", canary) == figures["canary"].runs

    # an aborted rollout leaves the page: no series of a rollout that no longer moves
    w.drive(80, reject_revision=2)
    assert w.rollout().status == "aborted"
    assert not [k for k in exposed(store) if k[0].startswith("kneo_rollout")]


def test_a_real_prometheus_scrapes_the_per_revision_series(store: Any, tmp_path: Path) -> None:
    w = World(store, tmp_path)
    w.release("good draft")
    w.release("better draft")
    for i in range(8):
        w.review(w.start(f"s-{i}"), reject_revision=None)
    figures = store.rollouts.figures(w.rollout().rollout_id)
    port = free_port()
    settings = dataclasses.replace(
        Settings.from_env({}), metrics_port=port, metrics_host="127.0.0.1"
    )
    server = metrics.serve_port(store, settings)
    try:
        with running(tmp_path, [f"127.0.0.1:{port}"]) as prometheus:
            prometheus.scraped(1)
            runs = prometheus.query("sum by (track, revision) (kneo_rollout_runs)")
            by_side = {
                (s["metric"]["track"], s["metric"]["revision"]): float(s["value"][1]) for s in runs
            }
            assert by_side == {
                ("canary", "2"): figures["canary"].runs,
                ("stable", "1"): figures["stable"].runs,
            }
            share = prometheus.query('kneo_rollout_canary_weight{bundle="helper"}')
            assert [float(s["value"][1]) for s in share] == [50.0]
    finally:
        server.shutdown()
