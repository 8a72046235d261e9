"""The run slot: on SQLite, one executing run at a time does its work in a process.

Python runs one thread at a time, so runs executing on several threads of one process (the
service's request threads, a worker's) never overlap their Python work: they interleave it.
On SQLite their database work is short CPU work too, and serialized by the store's write lock
anyway, so the interleaving buys nothing, while every switch between the threads hands the
interpreter lock, and often the write lock, to a thread that sleeps or wakes on the other
core. With four short runs at once that cost more than the runs: in-process, four threads
finished 0.65x the runs per second of one thread, at 1.6x the CPU per run and 9.5 thread
switches per run (``bench/run_slot.py``); through the slot, 0.8-0.93x, 1.5 switches.

So a run takes the process's slot when it starts executing and gives it back when it
stops (finishes, pauses, fails). A run that finds the slot taken waits for it, but never
longer than the slot's ``patience``: a holder that keeps it longer (a step waiting on the
network, a long run) loses it to the waiter, and waits for its turn again at its next step
boundary (:meth:`RunSlot.rejoin`). A run waiting on a model gives the slot up for the call
(:meth:`RunSlot.released`), so agent runs, which spend most of their time there, overlap as
before. The slot only orders work: nothing depends on it for
correctness (the store's compare-and-set and locks do that), so a run that goes ahead
without it is merely slower.

The engine knows nothing of it: the platform wraps what it injects. The driver holds the
slot around ``engine.run``, the run's journal rejoins at each step boundary, and the
providers the engine is built with give the slot up around each call
(:func:`releasing_providers`).

On PostgreSQL runs spend much of their time waiting on the server, where overlapping them
pays, so there is no slot (:func:`default_patience`).
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence

from kneo.engine.providers.base import ChatMessage, ModelReply, Provider
from kneo.spec.models import ModelSpec
from kneo.tools import ToolDefinition

#: How long a run waits for the slot on SQLite before it goes ahead (seconds).
SQLITE_PATIENCE = 0.020


def default_patience(backend: str, configured_ms: int | None) -> float:
    """The slot's patience in seconds: ``KNEO_SERV_RUN_SLOT_MS`` when set (0 turns the slot
    off), else :data:`SQLITE_PATIENCE` on SQLite and no slot on PostgreSQL."""
    if configured_ms is not None:
        return max(0, configured_ms) / 1000
    return SQLITE_PATIENCE if backend == "sqlite" else 0.0


class RunSlot:
    """One executing run at a time, with bounded waits; see the module docstring.

    The slot is handed over in arrival order: a run giving it back passes it to the run
    that has waited longest and wakes only that one (no thundering herd, and a run leaving
    cannot grab it straight back from the runs waiting)."""

    def __init__(self, patience: float) -> None:
        #: seconds a run waits for the slot before it goes ahead (0: no slot)
        self.patience = patience
        self._lock = threading.Lock()
        self._holder: int | None = None
        self._waiting: deque[tuple[int, threading.Event]] = deque()
        self._local = threading.local()  # runs this thread is executing (nested: a step's)

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Execute a run in the slot; a run started inside a run (same thread) shares it."""
        if self.patience <= 0:
            yield
            return
        depth = getattr(self._local, "depth", 0)
        self._local.depth = depth + 1
        if depth == 0:
            self._take()
        try:
            yield
        finally:
            self._local.depth = depth
            if depth == 0:
                self._give_back()

    @contextlib.contextmanager
    def released(self) -> Iterator[None]:
        """Let the other runs go while this one waits on the network (a model call), then
        wait for the slot again; a no-op for a thread that is no run in the slot."""
        if self._holder != threading.get_ident():
            yield
            return
        self._give_back()
        try:
            yield
        finally:
            self._take()

    def rejoin(self) -> None:
        """At a step boundary: a run that lost the slot to a waiter waits for its turn."""
        if self._holder == threading.get_ident() or not getattr(self._local, "depth", 0):
            return  # holding it, or not a run in the slot (a branch thread, no slot)
        self._take()

    def _take(self) -> None:
        me = threading.get_ident()
        with self._lock:
            if self._holder is None or self._holder == me:
                self._holder = me
                return
            turn = threading.Event()
            self._waiting.append((me, turn))
        if turn.wait(self.patience):
            return  # handed over
        with self._lock:
            if self._holder == me or turn.is_set():
                # handed over as the wait ran out (and maybe taken over since by a run
                # whose own wait ran out: this one goes ahead all the same)
                return
            self._waiting.remove((me, turn))
            self._holder = me  # held too long: go ahead; the holder rejoins at its next step

    def _give_back(self) -> None:
        with self._lock:
            if self._holder != threading.get_ident():
                return  # taken over by a run that waited past patience
            if self._waiting:
                self._holder, turn = self._waiting.popleft()
                turn.set()
            else:
                self._holder = None


class _SlotReleasingProvider:
    """``provider`` whose calls let the process's other runs go while this one waits on
    the network (:meth:`RunSlot.released`)."""

    def __init__(self, provider: Provider, slot: RunSlot) -> None:
        self.name = provider.name
        self._provider = provider
        self._slot = slot

    def complete(
        self,
        *,
        model: ModelSpec,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolDefinition],
    ) -> ModelReply:
        with self._slot.released():
            return self._provider.complete(model=model, messages=messages, tools=tools)


def releasing_providers(
    providers: Callable[[str], Provider], slot: RunSlot
) -> Callable[[str], Provider]:
    """The provider lookup the engine is built with: each provider gives ``slot`` up around
    its calls (``providers`` itself when there is no slot)."""
    if slot.patience <= 0:
        return providers

    def lookup(name: str) -> Provider:
        return _SlotReleasingProvider(providers(name), slot)

    return lookup
