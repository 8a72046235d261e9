"""The run lifecycle: every status change of a run goes through :func:`transition`.

Nothing writes a run's status directly; callers ask ``transition(current, target)`` and get the
new status or an :class:`~kneo.errors.IllegalTransition` carrying the reason. Pure, no I/O.

    queued ──► running ──► succeeded
      │          │  ▲ ──► failed ──► running   (continue_run after a failed step)
      │          │  │ ──► cancelled · timed_out
      │          ▼  │
      │        paused ──► expired · cancelled · timed_out
      └──► cancelled · timed_out · failed

``running → running`` is allowed: it is how a run whose process died is continued.
"""

from __future__ import annotations

from enum import StrEnum

from kneo.errors import IllegalTransition


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    TIMED_OUT = "timed_out"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset(
    {
        RunStatus.SUCCEEDED,
        RunStatus.CANCELLED,
        RunStatus.EXPIRED,
        RunStatus.TIMED_OUT,
        RunStatus.FAILED,
    }
)

_ALLOWED: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.QUEUED: frozenset(
        {RunStatus.RUNNING, RunStatus.CANCELLED, RunStatus.TIMED_OUT, RunStatus.FAILED}
    ),
    RunStatus.RUNNING: frozenset(
        {
            RunStatus.RUNNING,
            RunStatus.PAUSED,
            RunStatus.SUCCEEDED,
            RunStatus.FAILED,
            RunStatus.CANCELLED,
            RunStatus.TIMED_OUT,
        }
    ),
    RunStatus.PAUSED: frozenset(
        {
            RunStatus.RUNNING,
            RunStatus.CANCELLED,
            RunStatus.EXPIRED,
            RunStatus.TIMED_OUT,
            RunStatus.FAILED,
        }
    ),
    # A failed run may be continued from its last completed step boundary.
    RunStatus.FAILED: frozenset({RunStatus.RUNNING}),
    RunStatus.SUCCEEDED: frozenset(),
    RunStatus.CANCELLED: frozenset(),
    RunStatus.EXPIRED: frozenset(),
    RunStatus.TIMED_OUT: frozenset(),
}

_WHY: dict[RunStatus, str] = {
    RunStatus.SUCCEEDED: "the run already succeeded",
    RunStatus.CANCELLED: "the run was cancelled",
    RunStatus.EXPIRED: "the run expired waiting for a person",
    RunStatus.TIMED_OUT: "the run missed its deadline",
    RunStatus.FAILED: "the run failed",
    RunStatus.PAUSED: "the run is paused waiting for a person",
    RunStatus.QUEUED: "the run has not started",
    RunStatus.RUNNING: "the run is running",
}


def parse_status(value: str | RunStatus) -> RunStatus:
    try:
        return RunStatus(value)
    except ValueError:
        raise IllegalTransition(f"unknown run status {value!r}", status=str(value)) from None


def can_transition(current: str | RunStatus, target: str | RunStatus) -> bool:
    return parse_status(target) in _ALLOWED[parse_status(current)]


def transition(current: str | RunStatus, target: str | RunStatus, *, action: str = "") -> RunStatus:
    """Return ``target`` if the move ``current → target`` is legal, else raise with a reason."""
    cur, tgt = parse_status(current), parse_status(target)
    if tgt in _ALLOWED[cur]:
        return tgt
    verb = action or f"move to {tgt.value}"
    raise IllegalTransition(
        f"cannot {verb}: {_WHY[cur]} (status {cur.value})",
        current_status=cur.value,
        target_status=tgt.value,
    )
