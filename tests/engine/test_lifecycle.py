"""The lifecycle's two machines (:mod:`kneo.lifecycle`): runs, with the handed-to-a-worker
state, and human tasks; one ``transition`` for both, refusing with a reason."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from kneo.errors import IllegalTransition
from kneo.lifecycle import (
    HANDOFF_KEY,
    PUBLIC_RUN_STATUSES,
    RunStatus,
    TaskStatus,
    hand_off,
    handoff_of,
    phase_of,
    request_status,
    take_over,
    transition,
)

R, T = RunStatus, TaskStatus


@dataclass
class Run:
    status: str
    state: dict[str, Any] | None = field(default_factory=dict)


@pytest.mark.parametrize(
    ("current", "target", "ok"),
    [
        ("queued", R.RUNNING, True),
        ("running", R.PAUSED, True),
        ("paused", R.RUNNING, True),
        ("running", R.SUCCEEDED, True),
        ("failed", R.RUNNING, True),
        ("paused", R.EXPIRED, True),
        ("running", R.RUNNING, True),
        ("paused", R.HANDED, True),  # the last decision, workers exist
        ("failed", R.HANDED, True),  # a continue, workers exist
        ("handed", R.RUNNING, True),  # a worker takes it over
        ("handed", R.CANCELLED, True),
        ("handed", R.TIMED_OUT, True),
        ("handed", R.FAILED, True),
        ("succeeded", R.RUNNING, False),
        ("cancelled", R.SUCCEEDED, False),
        ("queued", R.PAUSED, False),
        ("paused", R.SUCCEEDED, False),
        ("queued", R.HANDED, False),
        ("handed", R.PAUSED, False),
        ("handed", R.SUCCEEDED, False),
        ("handed", R.HANDED, False),
        ("succeeded", R.HANDED, False),
    ],
)
def test_run_moves(current: str, target: RunStatus, ok: bool) -> None:
    if ok:
        assert transition(current, target) is target
    else:
        with pytest.raises(IllegalTransition) as info:
            transition(current, target)
        assert info.value.code == "illegal_transition" and current in info.value.message


@pytest.mark.parametrize(
    ("current", "target", "ok", "why"),
    [
        ("pending", T.RESOLVED, True, ""),  # decided, or an approval task closed
        ("pending", T.EXPIRED, True, ""),
        ("resolved", T.PENDING, True, ""),  # an approval task opened again
        (
            "resolved",
            T.RESOLVED,
            False,
            "the task was already resolved",
        ),  # decided twice, or superseded
        ("expired", T.RESOLVED, False, "the task expired"),  # decided after its expiry
        ("expired", T.PENDING, False, "the task expired"),
        ("resolved", T.EXPIRED, False, "the task was already resolved"),
    ],
)
def test_task_moves(current: str, target: TaskStatus, ok: bool, why: str) -> None:
    if ok:
        assert transition(current, target, action="decide") is target
        return
    with pytest.raises(IllegalTransition) as info:
        transition(current, target, action="decide the task")
    assert info.value.message.startswith(f"cannot decide the task: {why}")


@pytest.mark.parametrize(
    ("current", "target"),
    [(T.PENDING, R.RUNNING), (R.PAUSED, T.RESOLVED), ("pending", R.RUNNING), ("paused", T.PENDING)],
)
def test_one_machine_per_move(current: str, target: RunStatus | TaskStatus) -> None:
    with pytest.raises(IllegalTransition):
        transition(current, target)  # type: ignore[type-var]


def test_a_handed_run_is_running_to_everyone_but_the_lifecycle() -> None:
    paused = Run("paused", {"units": {}})
    state: dict[str, Any] = {"units": {}}
    stored = hand_off(paused, state, {"kind": "decision", "at": "now"}, action="resume the run")
    handed = Run(stored, state)
    assert stored == "running" and "handed" not in PUBLIC_RUN_STATUSES
    assert phase_of(handed) is R.HANDED and handoff_of(handed) == {"kind": "decision", "at": "now"}
    with pytest.raises(IllegalTransition, match="handed to a worker"):
        hand_off(handed, dict(state), {"kind": "continue"}, action="continue the run")
    taken = dict(state)
    assert take_over(handed, taken, action="continue the run") is R.RUNNING
    assert HANDOFF_KEY not in taken and phase_of(Run("running", taken)) is R.RUNNING
    # a mark left on a run that ended since means nothing
    assert (
        phase_of(Run("cancelled", state)) is R.CANCELLED
        and handoff_of(Run("failed", state)) is None
    )
    with pytest.raises(IllegalTransition):
        take_over(Run("succeeded", state), {}, action="continue the run")


def test_a_request_is_pending_only_while_its_task_is() -> None:
    assert request_status({}) is T.PENDING
    assert request_status({"status": "resolved"}) is T.RESOLVED
    assert request_status({}, "resolved") is T.RESOLVED
    with pytest.raises(IllegalTransition, match="unknown task status"):
        request_status({"status": "paused"})
