"""Continuations handed to the workers: where the rest of a run executes after a decision or
a continue.

Without workers (the CLI, the library, a service that runs none) the process that records the
decision also drives the run on, in the caller's thread, as it always did. When workers exist
(:attr:`HandOff.enabled`: the service runs its own, or is an API-only replica beside ``kneo
worker`` processes), a decision or continue is one transaction that records it, moves the run
to ``running`` *without* taking its lease, marks the run's state with :data:`HANDOFF_KEY` and
enqueues the run; a worker claims the record and takes the run over from there
(:meth:`kneo.platform.runs.Runs.continue_run` with ``hand_off=False``), recording itself in a
``run_claimed`` trace event (owner, host, PID). The caller gets the run as it is then
(``RunResult.handed_off``); the service answers ``202`` or waits as the caller asked
(``Prefer: wait=N``, :func:`settled`).

Why it holds: the run is ``running`` from the decision's commit on, so a racing decision reads
``resource_locked`` exactly as while a request drove it; the take-over is a compare-and-set on
the run, so of two workers holding records of one run one drives it and the other finds it
held; the queue record makes the run no stranded run, and if the record is ever lost the
stranded-run sweep queues the run again. Completed steps are never executed again: the worker
drives from the state the decision wrote, as any continue does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kneo.store import RunRecord

#: the key of a run's stored state that marks it queued for a worker to continue: ``{"kind":
#: "decision" | "continue", "at": ISO time, "continuation_id"?, "trace"?}``. The engine's state
#: leaves it out, so the worker's first write (the take-over) removes it.
HANDOFF_KEY = "handoff"

#: the statuses a waiting caller stops at: the run paused for a person or ended
SETTLED = frozenset({"paused", "succeeded", "failed", "cancelled", "expired", "timed_out"})


@dataclass(eq=False)
class HandOff:
    """Whether continuations go to the workers (``enabled``), and how to wake a worker of this
    process at once (``wake``; workers elsewhere find the record at their next poll)."""

    enabled: bool = False
    wake: Callable[[], None] | None = None

    def woken(self) -> None:
        if self.wake is not None:
            self.wake()


def handoff_of(run: RunRecord) -> Mapping[str, Any] | None:
    """The hand-off mark of a run waiting for a worker to continue it, or ``None``."""
    marker = (run.state or {}).get(HANDOFF_KEY)
    return marker if isinstance(marker, Mapping) else None


def settled(status: str) -> bool:
    """Whether a run in ``status`` has stopped moving on its own (paused or ended)."""
    return status in SETTLED
