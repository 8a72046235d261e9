"""Continuations handed to the workers: where the rest of a run executes after a decision or
a continue.

Without workers (the CLI, the library, a service that runs none) the process that records the
decision also drives the run on, in the caller's thread, as it always did. When workers exist
(:attr:`HandOff.enabled`: the service runs its own, or is an API-only replica beside ``kneo
worker`` processes), a decision or continue is one transaction that records it, moves the run
to ``handed`` (:mod:`kneo.lifecycle`: public status ``running``) *without* taking its lease and
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

from collections.abc import Callable
from dataclasses import dataclass

from kneo.lifecycle import SETTLED


@dataclass(eq=False)
class HandOff:
    """Whether continuations go to the workers (``enabled``), and how to wake a worker of this
    process at once (``wake``; workers elsewhere find the record at their next poll)."""

    enabled: bool = False
    wake: Callable[[], None] | None = None

    def woken(self) -> None:
        if self.wake is not None:
            self.wake()


def settled(status: str) -> bool:
    """Whether a run in ``status`` has stopped moving on its own (paused or ended)."""
    return status in SETTLED
