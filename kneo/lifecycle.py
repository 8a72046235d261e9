"""The lifecycle of runs and human tasks: every status change goes through :func:`transition`.

Nothing writes a run's or a task's status directly; callers ask ``transition(current,
target, action=...)`` and get the new state or an :class:`~kneo.errors.IllegalTransition`
carrying the reason. One function serves both machines, chosen by the target's type
(:class:`RunStatus` or :class:`TaskStatus`); a move from one machine's state to the other's
is refused. Pure, no I/O; in the base layer so the store names the same states.

Runs::

    queued ──► running ──► succeeded
      │          │  ▲ ──► failed ──► running · handed   (continue_run after a failed step)
      │          │  │ ──► cancelled · timed_out · handed (continued after its process died)
      │          ▼  │
      │        paused ──► expired · cancelled · timed_out · failed
      │          │
      │          ▼        (the last decision, when workers exist)
      │        handed ──► running (a worker takes it over) · cancelled · timed_out · failed
      └──► cancelled · timed_out · failed

``running → running`` is allowed: it is how a run whose process died is continued.

**Handed** (to a worker): a decision or continue recorded, the rest of the run queued for a
worker that has not taken it over yet (:mod:`kneo.platform.handoff`). Its public status is
``running`` (the run is no longer paused and a racing decision must read it as running), so
the status column stores ``running`` and list filters and counters see ``running``; what
makes it handed is the hand-off mark in the run's state (:data:`HANDOFF_KEY`). The mark is
read (:func:`phase_of`, :func:`handoff_of`) and written (:func:`hand_off`, :func:`take_over`)
only here: a column would need a migration, a second status in every list filter and
counter, and a write in the same places these functions already are.

Human tasks (a continuation, and each request inside it)::

    pending ──► resolved   (decided; an approval task closed with its outcome)
       │  ▲        │
       │  └────────┘       (an approval task opened again for another revision)
       └──► expired

A task is created ``pending``. Deciding twice, deciding an expired task or closing a resolved
one (superseded, withdrawn ...: outcomes of ``resolved``, kept in its context) is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Protocol, TypeVar

from kneo.errors import IllegalTransition

#: the key of a run's stored state that marks it handed to a worker: ``{"kind": "decision" |
#: "continue", "at": ISO time, "continuation_id"?, "trace"?}``
HANDOFF_KEY = "handoff"


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    TIMED_OUT = "timed_out"
    #: lifecycle only: stored and shown as ``running`` (see the module docstring)
    HANDED = "handed"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


class TaskStatus(StrEnum):
    PENDING = "pending"
    RESOLVED = "resolved"
    EXPIRED = "expired"


TERMINAL = frozenset(
    {
        RunStatus.SUCCEEDED,
        RunStatus.CANCELLED,
        RunStatus.EXPIRED,
        RunStatus.TIMED_OUT,
        RunStatus.FAILED,
    }
)
#: the statuses a run is stored, listed and filtered by (``handed`` shows as ``running``)
PUBLIC_RUN_STATUSES = tuple(s.value for s in RunStatus if s is not RunStatus.HANDED)
#: the statuses a waiting caller stops at: paused for a person, or ended
SETTLED = frozenset({RunStatus.PAUSED, *TERMINAL})

_ENDS = (RunStatus.CANCELLED, RunStatus.TIMED_OUT, RunStatus.FAILED)
_ALLOWED: dict[StrEnum, frozenset[StrEnum]] = {
    RunStatus.QUEUED: frozenset({RunStatus.RUNNING, *_ENDS}),
    RunStatus.RUNNING: frozenset(
        {RunStatus.RUNNING, RunStatus.HANDED, RunStatus.PAUSED, RunStatus.SUCCEEDED, *_ENDS}
    ),
    RunStatus.PAUSED: frozenset({RunStatus.RUNNING, RunStatus.HANDED, RunStatus.EXPIRED, *_ENDS}),
    RunStatus.HANDED: frozenset({RunStatus.RUNNING, *_ENDS}),
    # A failed run may be continued from its last completed step boundary.
    RunStatus.FAILED: frozenset({RunStatus.RUNNING, RunStatus.HANDED}),
    RunStatus.SUCCEEDED: frozenset(),
    RunStatus.CANCELLED: frozenset(),
    RunStatus.EXPIRED: frozenset(),
    RunStatus.TIMED_OUT: frozenset(),
    TaskStatus.PENDING: frozenset({TaskStatus.RESOLVED, TaskStatus.EXPIRED}),
    TaskStatus.RESOLVED: frozenset({TaskStatus.PENDING}),
    TaskStatus.EXPIRED: frozenset(),
}

_WHY: dict[StrEnum, str] = {
    RunStatus.SUCCEEDED: "the run already succeeded",
    RunStatus.CANCELLED: "the run was cancelled",
    RunStatus.EXPIRED: "the run expired waiting for a person",
    RunStatus.TIMED_OUT: "the run missed its deadline",
    RunStatus.FAILED: "the run failed",
    RunStatus.PAUSED: "the run is paused waiting for a person",
    RunStatus.QUEUED: "the run has not started",
    RunStatus.RUNNING: "the run is running",
    RunStatus.HANDED: "the run is handed to a worker",
    TaskStatus.PENDING: "the task is waiting for a decision",
    TaskStatus.RESOLVED: "the task was already resolved",
    TaskStatus.EXPIRED: "the task expired",
}

S = TypeVar("S", RunStatus, TaskStatus)


class RunLike(Protocol):
    """What the lifecycle reads of a run: its stored status and state."""

    @property
    def status(self) -> str: ...

    @property
    def state(self) -> Mapping[str, Any] | None: ...


def _parse(value: str | StrEnum, machine: type[S]) -> S:
    if isinstance(value, (RunStatus, TaskStatus)) and not isinstance(value, machine):
        raise IllegalTransition(
            f"a {type(value).__name__} is no {machine.__name__}: one machine per move",
            status=str(value),
        )
    try:
        return machine(value)
    except ValueError:
        what = "run" if machine is RunStatus else "task"
        raise IllegalTransition(f"unknown {what} status {value!r}", status=str(value)) from None


def transition(current: str | S, target: S, *, action: str = "") -> S:
    """Return ``target`` if the move ``current → target`` is legal in ``target``'s machine,
    else raise with a reason. ``HANDED`` is never stored: :func:`hand_off` moves a run there."""
    machine = type(target)
    if machine not in (RunStatus, TaskStatus):
        raise IllegalTransition(f"unknown status {target!r}", status=str(target))
    cur = _parse(current, machine)
    if target in _ALLOWED[cur]:
        return target
    verb = action or f"move to {target.value}"
    raise IllegalTransition(
        f"cannot {verb}: {_WHY[cur]} (status {cur.value})",
        current_status=cur.value,
        target_status=target.value,
    )


def phase_of(run: RunLike) -> RunStatus:
    """The run's lifecycle state: its stored status, or ``HANDED`` for a running run carrying
    the hand-off mark (the mark left on a run that ended since means nothing)."""
    status = _parse(run.status, RunStatus)
    if status is RunStatus.RUNNING and handoff_of(run) is not None:
        return RunStatus.HANDED
    return status


def handoff_of(run: RunLike) -> Mapping[str, Any] | None:
    """The hand-off mark of a run handed to a worker, or ``None``."""
    if run.status != RunStatus.RUNNING:
        return None
    marker = (run.state or {}).get(HANDOFF_KEY)
    return marker if isinstance(marker, Mapping) else None


def hand_off(
    run: RunLike, state: dict[str, Any], marker: Mapping[str, Any], *, action: str
) -> RunStatus:
    """``run → handed``: ``state`` (the state to write) gets the mark; returns the status to
    store, ``running``."""
    transition(phase_of(run), RunStatus.HANDED, action=action)
    state[HANDOFF_KEY] = dict(marker)
    return RunStatus.RUNNING


def take_over(run: RunLike, state: dict[str, Any], *, action: str) -> RunStatus:
    """``handed → running``: a worker takes the run over; ``state`` (the state to write) loses
    the mark; returns the status to store."""
    status = transition(phase_of(run), RunStatus.RUNNING, action=action)
    state.pop(HANDOFF_KEY, None)
    return status


def request_status(request: Mapping[str, Any], task: str = TaskStatus.PENDING) -> TaskStatus:
    """A request entry's status in its task (in ``task`` status): its own (an entry written
    before it was stored is pending) while the task is pending, else resolved (a closed task
    has no pending request)."""
    if task != TaskStatus.PENDING:
        return TaskStatus.RESOLVED
    return _parse(request.get("status") or TaskStatus.PENDING, TaskStatus)
