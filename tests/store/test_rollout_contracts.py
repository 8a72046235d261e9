"""``store.rollouts`` and a transaction's rollout writes on both databases: what the
controller and a run's start may rely on (a begun rollout is the key's current one and serves its new runs'
split; moving it is a compare-and-set; a rollout of another project is not found)."""

from __future__ import annotations

import pytest

from kneo.errors import Conflict, NotFound
from kneo.store import RolloutQuery, Store
from kneo.store.rollouts import RolloutRecord

#: The newest rollout of the key the tests begin rollouts of.
NEWEST = RolloutQuery(bundle="helper", environment="dev", limit=1)


def _begin(store: Store, rollout_id: str) -> RolloutRecord:
    with store.transaction() as tx:
        return tx.begin_rollout(
            rollout_id,
            bundle_name="helper",
            environment="dev",
            stable_revision=1,
            canary_revision=2,
            canary_digest="sha256:c",
            commit="abc",
            weight=10,
            step=0,
            policy={"steps": [{"set_weight": 10}, {"set_weight": 100}]},
        )


def test_a_begun_rollout_is_read_moved_and_counted(store: Store) -> None:
    reads = store
    begun = _begin(store, "ro_contract")
    assert reads.rollouts.list_rollouts(NEWEST).items == [begun]
    assert reads.rollouts.get_rollout("ro_contract") == begun
    assert [r.rollout_id for r in reads.rollouts.active()] == ["ro_contract"]
    assert [
        r.rollout_id for r in reads.rollouts.list_rollouts(RolloutQuery(bundle="helper")).items
    ] == ["ro_contract"]
    # no revision of the bundle is registered here: nothing serves (the split reads both)
    assert reads.rollouts.serving("helper", "dev") == (None, None)
    side = {"id": "ro_contract", "track": "canary"}
    with store.transaction() as tx:
        tx.note_rollout(side, started=True)
        tx.note_rollout(side, status="failed", latency_ms=120, cost=0.25)
        tx.note_rollout(side, decisions=[("approval", "rejected")])
        moved = tx.move_rollout(begun, status="aborted", reason="worse", weight=0)
    canary = reads.rollouts.figures("ro_contract")["canary"]
    assert (canary.runs, canary.failed, canary.rejected) == (1, 1, 1)
    assert (moved.status, moved.weight, moved.version) == ("aborted", 0, begun.version + 1)
    assert reads.rollouts.active() == []
    with pytest.raises(Conflict), store.transaction() as tx:  # moved since: a stale record
        tx.move_rollout(begun, status="progressing")


def test_another_projects_rollout_is_not_found(store: Store) -> None:
    _begin(store, "ro_mine")
    other = store.for_project(store.projects.create_project("other").name)
    with pytest.raises(NotFound):
        other.rollouts.get_rollout("ro_mine")
    assert other.rollouts.list_rollouts(NEWEST).items == []
    assert other.rollouts.list_rollouts().items == []


def _finished_run(store: Store, revision: int, *, status: str = "succeeded") -> str:
    with store.transaction() as tx:
        return tx.create_run(
            target="bundle", input_text="hi", status=status, environment="dev",
            bundle_name="helper", bundle_revision=revision,
        ).run_id  # fmt: skip


def test_a_judgement_is_kept_once_counted_per_side_and_in_its_project(store: Store) -> None:
    reads = store
    begun = _begin(store, "ro_judged")
    canary = [_finished_run(store, 2) for _ in range(3)]
    stable = [_finished_run(store, 1) for _ in range(2)]
    _finished_run(store, 3)  # another revision: not the rollout's
    _finished_run(store, 2, status="failed")  # not succeeded: nothing to judge
    waiting = reads.rollouts.unjudged_runs(begun)
    assert sorted(c.run_id for c in waiting) == sorted(canary + stable)
    first = reads.rollouts.unjudged_runs(begun, limit=2)
    assert [c.run_id for c in first] == [c.run_id for c in waiting[:2]]
    after = (first[-1].settled_at, first[-1].run_id)
    assert [c.run_id for c in reads.rollouts.unjudged_runs(begun, after=after)] == [
        c.run_id for c in waiting[2:]
    ]

    assert reads.rollouts.record_judgement(
        "ro_judged", canary[0], track="canary", passed=False, reason="FAIL " + "x" * 300
    )
    # a second sweep judging the same run writes nothing: the first verdict stands
    assert not reads.rollouts.record_judgement(
        "ro_judged", canary[0], track="canary", passed=True, reason="PASS"
    )
    reads.rollouts.record_judgement(
        "ro_judged", canary[1], track="canary", passed=True, reason="ok"
    )
    reads.rollouts.record_judgement(
        "ro_judged", stable[0], track="stable", passed=True, reason="ok"
    )
    sides = reads.rollouts.figures("ro_judged")
    assert (sides["canary"].judged, sides["canary"].judge_passed) == (2, 1)
    assert (sides["stable"].judged, sides["stable"].judge_passed) == (1, 1)
    assert {c.run_id for c in reads.rollouts.unjudged_runs(begun)} == {canary[2], stable[1]}
    with pytest.raises(ValueError, match="track"):
        reads.rollouts.record_judgement(
            "ro_judged", canary[2], track="both", passed=True, reason=""
        )

    # another project's view sees none of it, and may not judge it
    other = store.for_project(store.projects.create_project("elsewhere").name)
    assert other.rollouts.unjudged_runs(begun) == []
    assert other.rollouts.figures("ro_judged")["canary"].judged == 0
    with pytest.raises(NotFound):
        other.rollouts.record_judgement(
            "ro_judged", canary[2], track="canary", passed=False, reason="theirs"
        )
    assert reads.rollouts.figures("ro_judged")["canary"].judged == 2
    assert reads.rollouts.record_judgement(
        "ro_judged", canary[2], track="canary", passed=True, reason="mine"
    )
