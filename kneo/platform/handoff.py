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

A decision made in a process whose own worker has an idle thread (the service's) folds the
take-over into its transaction: the queue record is written already claimed by that worker, the
run goes to ``running`` under this process's lease with its ``run_claimed`` event, and the
thread is given the record in memory (:class:`LocalWorker`) and drives from there. One
transaction instead of three (record, claim, take-over), the same durability: the record's
lease lapses if the process dies and another worker continues the run from the decision's
state, as it would a worker's that died mid-run. A project with ``limits:`` (a slot is taken
in the take-over) and a process whose worker is busy hand off through the queue.

Why it holds: the run is ``running`` from the decision's commit on, so a racing decision reads
``resource_locked`` exactly as while a request drove it; the take-over is a compare-and-set on
the run, so of two workers holding records of one run one drives it and the other finds it
held; the queue record makes the run no stranded run, and if the record is ever lost the
stranded-run sweep queues the run again. Completed steps are never executed again: the worker
drives from the state the decision wrote, as any continue does.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from kneo.lifecycle import SETTLED
from kneo.platform.results import RunResult
from kneo.store import QueueRecord


class LocalWorker(Protocol):
    """The worker of this process, as a decision's transaction hands it a run directly."""

    owner: str
    lease_seconds: float

    def idle(self) -> bool:
        """Whether a thread waits for work that no given record has been promised to yet."""
        ...

    def give(
        self, record: QueueRecord, lease_owner: str, execute: Callable[[str], RunResult]
    ) -> None:
        """Execute ``record`` (claimed for this worker in a committed transaction) on a
        thread: ``execute`` drives its run, whose lease ``lease_owner`` holds."""
        ...


@dataclass(eq=False)
class HandOff:
    """Whether continuations go to the workers (``enabled``), and the worker of this process
    a decision may hand its run to in its own transaction (``local``)."""

    enabled: bool = False
    local: LocalWorker | None = None

    def taker(self) -> LocalWorker | None:
        """This process's worker when one of its threads is idle, else ``None`` (the queue)."""
        local = self.local
        return local if self.enabled and local is not None and local.idle() else None


def executor(owner: str) -> dict[str, Any]:
    """Who executes a run from here on, as its trace records it: the owner name (host, PID
    and a nonce), and the host and PID on their own."""
    return {"owner": owner, "host": socket.gethostname(), "pid": os.getpid()}


def claimed_event(owner: str, kind: object, actor: str | None = None) -> dict[str, Any]:
    """The ``run_claimed`` trace event of a take-over: who executes the run from here on
    (:func:`executor`), after which kind of hand-off (``decision``, ``continue``), and whose
    request it was when one is named."""
    payload = {**executor(owner), "handed_off": kind}
    if actor is not None:
        payload["actor"] = actor
    return {"event_type": "run_claimed", "payload": payload}


def settled(status: str) -> bool:
    """Whether a run in ``status`` has stopped moving on its own (paused or ended)."""
    return status in SETTLED
