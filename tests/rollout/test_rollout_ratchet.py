"""A pushed policy that loosens its rollout waits under the ratchet like any other gate;
one that tightens it takes effect at once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from kneo.clock import ManualClock
from kneo.store import open_store
from tests.controller.gitops_fixtures import Keys, Repo, make_controller, spec

GUARDED = """version: v1
rollout:
  steps:
    - set_weight: 10
    - analysis: {min_runs: 50}
    - pause: {approvers: [release-managers]}
    - set_weight: 100
"""

NO_PAUSE = """version: v1
rollout:
  steps:
    - set_weight: 10
    - analysis: {min_runs: 50}
    - set_weight: 100
"""

SLOWER = """version: v1
rollout:
  steps:
    - set_weight: 5
    - analysis: {min_runs: 80}
    - pause: {approvers: [release-managers]}
    - set_weight: 50
    - analysis: {}
    - set_weight: 100
"""


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    clock = ManualClock(datetime(2026, 2, 1, 12, 0, tzinfo=UTC))
    if request.param == "postgres":
        url = request.getfixturevalue("pg_database")()
    else:
        url = f"sqlite:///{tmp_path / 'kneo.sqlite'}"
    s = open_store(url, clock=clock)
    yield s
    s.close()


def test_a_loosened_rollout_is_held_and_a_tightened_one_applies(store: Any, tmp_path: Path) -> None:
    repo, keys = Repo(tmp_path / "git"), Keys(tmp_path / "keys")
    repo.write("environments/prod.yaml", GUARDED)
    repo.write("bundles/helper/prod.json", keys.bundle("helper", "prod", spec("v1")))
    repo.commit("prod with a guarded rollout")
    ctl = make_controller(store, repo, keys, store.clock, tmp_path)
    assert ctl.reconcile_once().ok

    repo.write("environments/prod.yaml", NO_PAUSE)
    commit = repo.commit("drop the pause")
    result = ctl.reconcile_once()
    [held] = [p for p in result.problems if p["code"] == "policy_held"]
    assert commit[:12] in held["message"]
    prod = dict(ctl.status()["policy"]["prod"])
    assert prod["state"] == "held"
    assert [c["gate"] for c in prod["loosened"]] == ["rollout"]
    assert "was removed" in prod["loosened"][0]["summary"]

    repo.write("environments/prod.yaml", SLOWER)
    repo.commit("a slower rollout")
    result = ctl.reconcile_once()
    assert not [p for p in result.problems if p["code"] == "policy_held"]
    assert dict(ctl.status()["policy"]["prod"])["state"] != "held"
