"""Wake-ups between the processes of one database: a run was queued (a worker should claim
it now, not at its next poll), a run moved (whoever waits for its pause or end should read
it now, not at its next look), a notification was written (the dispatcher should deliver it
now).

Within a process a wake-up is a call of the callbacks registered here, made by the thread that
committed the change. On PostgreSQL it also travels as a ``NOTIFY`` on :data:`QUEUED` or
:data:`MOVED` (the run id as payload), sent after the change committed, and a
``LISTEN``-ing thread (:meth:`Wakeups.start`) hands the ones of other processes to the same
callbacks. The outbox's ``NOTIFY`` on :data:`OUTBOX` is the database's own: a trigger on
``notification_events`` (migration 0029) sends it when the inserting transaction commits, so a
pause pays no round trip for it. A wake-up carries no state: whoever is woken reads the database, so one lost (a
listener reconnecting, SQLite across processes) costs the poll interval it would have cost
anyway, never a wrong answer; one delivered twice costs a read.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from kneo.logs import get_logger

log = get_logger("kneo_serv.wakeups")

#: the channel of "a run was queued" (payload: the run id, or empty)
QUEUED = "kneo_queued"
#: the channel of "a run moved" (paused, ended, failed over): payload the run id
MOVED = "kneo_run_moved"
#: the channel of "a notification was written" (sent by the database at the insert's commit)
OUTBOX = "kneo_outbox"
#: how long the listener waits for a notification before checking it should stop (a stop
#: sends a ``NOTIFY`` on the listener's own channel, so it rarely waits this long)
LISTEN_SECONDS = 1.0
#: the longest pause between two attempts to (re)connect the listener
MAX_RECONNECT_SECONDS = 30.0
#: a run that moved this recently wakes a new watcher at once (it may have moved between the
#: watcher's decision and its watch); how many such runs are remembered
RECENT_SECONDS = 60.0
RECENT_RUNS = 4096

Callback = Callable[[], None]
#: a run's watcher: called with what the process that moved it knows of it (its outcome, in
#: that process), or ``None`` (from another process: read the run)
Watcher = Callable[[object], None]


class Wakeups:
    """The wake-ups of one database (shared by every project's view of its store)."""

    def __init__(self, engine: Engine, backend: str) -> None:
        self._engine = engine
        self._notify = backend == "postgresql"
        self._lock = threading.Lock()
        self._queued: list[Callback] = []
        self._outbox: list[Callback] = []
        self._moved: dict[str, list[Watcher]] = {}
        self._recent: OrderedDict[str, float] = OrderedDict()
        self._listener: threading.Thread | None = None
        self._stop = threading.Event()
        #: this listener's own channel: a ``NOTIFY`` on it ends the listener's wait at once
        #: (a closing store, a test's teardown, waited up to :data:`LISTEN_SECONDS` before)
        self._stop_channel = f"kneo_stop_{secrets.token_hex(8)}"

    # ------------------------------------------------------------------ subscribing

    def on_queued(self, callback: Callback) -> Callback:
        """Call ``callback`` whenever a run is queued; returns the call that stops it."""
        with self._lock:
            self._queued.append(callback)

        def cancel() -> None:
            with self._lock, contextlib.suppress(ValueError):
                self._queued.remove(callback)

        return cancel

    def on_outbox(self, callback: Callback) -> Callback:
        """Call ``callback`` whenever a notification event commits; returns the call that
        stops it."""
        with self._lock:
            self._outbox.append(callback)

        def cancel() -> None:
            with self._lock, contextlib.suppress(ValueError):
                self._outbox.remove(callback)

        return cancel

    def watch(self, run_id: str, callback: Watcher) -> Callback:
        """Call ``callback`` whenever run ``run_id`` moves, and at once if it moved in the last
        :data:`RECENT_SECONDS` (perhaps just before the watch: the watcher reads it, which
        costs a read when the move was an older one); returns the call that stops it."""
        with self._lock:
            self._moved.setdefault(run_id, []).append(callback)
            moved = self._recent.get(run_id)
        if moved is not None and time.monotonic() - moved < RECENT_SECONDS:
            callback(None)

        def cancel() -> None:
            with self._lock:
                callbacks = self._moved.get(run_id, [])
                with contextlib.suppress(ValueError):
                    callbacks.remove(callback)
                if not callbacks:
                    self._moved.pop(run_id, None)

        return cancel

    # ------------------------------------------------------------------ publishing

    def queued(self, run_id: str = "") -> None:
        """A run was queued (committed): wake this process's workers, and other processes'."""
        self._deliver(QUEUED, run_id)
        self._send(QUEUED, run_id)

    def moved(self, run_id: str, outcome: object = None) -> None:
        """Run ``run_id`` moved (committed): wake whoever waits for it, here (with
        ``outcome``, what this process made of it) and elsewhere."""
        self._deliver(MOVED, run_id, outcome)
        self._send(MOVED, run_id)

    def outbox_written(self) -> None:
        """A notification event committed in this process: wake its dispatcher (other
        processes hear the database's own ``NOTIFY``)."""
        self._deliver(OUTBOX, "")

    def _deliver(self, channel: str, run_id: str, outcome: object = None) -> None:
        with self._lock:
            if channel == MOVED:
                self._recent[run_id] = time.monotonic()
                self._recent.move_to_end(run_id)
                if len(self._recent) > RECENT_RUNS:
                    self._recent.popitem(last=False)
            queued = list(
                self._queued if channel == QUEUED else self._outbox if channel == OUTBOX else ()
            )
            watchers = list(self._moved.get(run_id, ())) if channel == MOVED else []
        try:  # a waiter gone wrong must not fail the committer
            for callback in queued:
                callback()
            for watcher in watchers:
                watcher(outcome)
        except Exception:
            log.exception("wake-up callback on %s failed", channel)

    def _send(self, channel: str, run_id: str) -> None:
        """``NOTIFY`` (PostgreSQL); best effort: a lost wake-up costs a poll interval."""
        if not self._notify:
            return
        try:
            with self._engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
                c.execute(sa.text("SELECT pg_notify(:c, :p)"), {"c": channel, "p": run_id})
        except Exception as exc:  # the database blinked: the pollers still find the change
            log.warning("could not notify %s: %s", channel, type(exc).__name__)

    # ------------------------------------------------------------------ listening

    def start(self) -> None:
        """Listen for other processes' wake-ups (PostgreSQL; once per process and database;
        nothing on SQLite, whose processes share no channel)."""
        if not self._notify:
            return
        with self._lock:
            if self._listener is not None and self._listener.is_alive():
                return
            self._stop.clear()
            self._listener = threading.Thread(target=self._listen, name="kneo-wakeups", daemon=True)
            self._listener.start()

    def stop(self) -> None:
        """Stop listening: at once, or within :data:`LISTEN_SECONDS` when the stop's own
        ``NOTIFY`` cannot reach the listener (the database is gone)."""
        self._stop.set()
        listener, self._listener = self._listener, None
        if listener is not None and listener.is_alive():
            self._send(self._stop_channel, "")
            listener.join(timeout=LISTEN_SECONDS * 3)

    def _listen(self) -> None:
        delay = 0.5
        while not self._stop.is_set():
            try:
                self._listen_once()
                delay = 0.5
            except Exception as exc:  # reconnect with a back-off; the pollers cover the gap
                log.warning("wake-up listener lost its connection: %s", type(exc).__name__)
                self._stop.wait(delay)
                delay = min(MAX_RECONNECT_SECONDS, delay * 2)

    def _listen_once(self) -> None:
        raw = self._engine.raw_connection()  # set up as the pool's are, then its own
        conn: Any = raw.driver_connection  # (psycopg's; gone from the proxy once detached)
        raw.detach()  # out of the pool: it listens for the process's life
        try:
            conn.autocommit = True
            conn.execute(f"LISTEN {QUEUED}")
            conn.execute(f"LISTEN {MOVED}")
            conn.execute(f"LISTEN {OUTBOX}")
            conn.execute(f"LISTEN {self._stop_channel}")
            while not self._stop.is_set():
                for note in conn.notifies(timeout=LISTEN_SECONDS):
                    if note.channel == self._stop_channel:
                        return
                    self._deliver(note.channel, note.payload)
        finally:
            conn.close()
