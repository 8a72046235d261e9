"""A human request the sweep escalates counts in its rollout's analysis: the ``escalated``
figure of the side its run took (SQLite and PostgreSQL), once per request however often
the sweep passes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.rollout.world import World, flow


class Escalating(World):
    def release(self, draft: str) -> None:
        spec = flow(draft)
        spec["components"]["humans"]["reviewer"].update(timeout_seconds=60, on_timeout="escalate")
        self.repo.write("bundles/helper/dev.json", self.keys.bundle("helper", "dev", spec))
        self.repo.commit(draft)
        assert self.ctl.reconcile_once().ok


def test_an_escalated_request_counts_on_its_runs_side(store: Any, tmp_path: Path) -> None:
    w = Escalating(store, tmp_path)
    w.release("good draft")
    w.release("better draft")
    ro = w.rollout()
    assert ro is not None and ro.weight == 50
    sides = {"canary": 0, "stable": 0}
    for i in range(12):
        run = w.start(f"session-{i}")
        sides[store.runs.get_run(run.run_id).metadata["rollout"]["track"]] += 1
    assert sides["canary"] and sides["stable"]
    w.clock.advance(61)
    assert w.manager.prune_expired_human_tasks() == 12
    w.clock.advance(3600)
    assert w.manager.prune_expired_human_tasks() == 0  # escalated once
    figures = store.rollouts.figures(ro.rollout_id)
    assert figures["canary"].escalated == sides["canary"]
    assert figures["stable"].escalated == sides["stable"]
    assert figures["canary"].decided == 0  # nobody decided yet
