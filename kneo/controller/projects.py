"""One leader reconciles every project's source: :class:`ProjectControllers`.

A project's source is the ``controller:`` block of its definition (the host's block is the
``default`` project's; :func:`~kneo.controller.config.project_source`). The supervisor holds
the host controller's leader lock (``controller:<name>``, as a single controller did) and
runs the :class:`~kneo.controller.loop.ControllerLoop` unchanged; under it each source has
a :class:`~kneo.controller.controller.Controller` of its own on its project's store view
(its status row, conditions, incremental state, policy and registry writes are that
project's), leading through the supervisor's lock
(:class:`~kneo.controller.leadership.SharedLeadership`).

* **Due.** Each source has its own ``interval``; a pass runs the sources that are due or
  woken, one after another, and nothing of the others: a pass costs what its due sources
  cost, however many projects there are.
* **Wake-ups.** One listener for every project (:meth:`~kneo.store.coordination.
  controller_requests.ControllerFacet.controller_wakeups`): a request queued in project
  P for its source wakes P's source only.
* **Catalog.** The projects are read again every :data:`CATALOG_SECONDS` (one query); a
  source added, redefined or archived by an administrator is picked up then, without a
  restart. A definition is parsed again only when it changed.
* **Errors.** A source that cannot be built (no trusted keys, a variable not set) is
  recorded in its project's controller status with stage ``config``; the other projects
  reconcile as if it were not there. The host's own source fails at start, as it always did.

Building a project's controller waits for its first pass as the leader: a standby holds
only the sources' configurations.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kneo.clock import SystemClock
from kneo.controller.config import ControllerConfig, project_source
from kneo.controller.controller import Controller, ReconcileResult
from kneo.controller.leadership import LeaderLock, SharedLeadership
from kneo.controller.loop import ControllerLoop
from kneo.controller.model import ACTOR
from kneo.controller.runner import build_controller
from kneo.errors import ErrorCode, KneoError
from kneo.ids import new_id
from kneo.logs import get_logger
from kneo.projects import DEFAULT_PROJECT, DEFAULT_PROJECT_ID
from kneo.redaction import reduce_url

if TYPE_CHECKING:
    from kneo.controller.watch import Triggerable
    from kneo.settings import Settings
    from kneo.spec.project import ProjectContext
    from kneo.store import ProjectRecord, Store
    from kneo.store.coordination.controller_requests import ControllerWakeups
    from kneo.tools import ToolRegistry

log = get_logger("kneo.controller")

#: How often the project catalog is read again for sources added, redefined or archived
#: (the platform managers see a definition change as soon: kneo.platform.projects).
CATALOG_SECONDS = 5.0

#: Builds one project's controller (``build_controller``'s signature).
Build = Callable[..., Controller]


@dataclass
class _Source:
    """One project's source: its configuration and, once built, its controller."""

    project: str
    project_id: int
    config: ControllerConfig
    context: ProjectContext
    #: monotonic seconds at which its next pass is due
    due: float = 0.0
    controller: Controller | None = None
    #: what building its controller last failed with (recorded in its status)
    error: dict[str, str] | None = field(default=None)


class ProjectControllers:
    """Every project's source under one leader; runs like one controller
    (:class:`~kneo.controller.runner.ControllerRunner`, ``kneo controller run``).

    ``config`` is the host's ``controller:`` block (flags over it): the ``default``
    project's source (when it names a repository), and the leader lock, lease and poll of
    all of them. ``host`` is the host's project context, ``tools`` the default project's
    tools."""

    def __init__(
        self,
        store: Store,
        config: ControllerConfig,
        settings: Settings,
        *,
        host: ProjectContext,
        tools: ToolRegistry | None = None,
        owner: str | None = None,
        catalog_seconds: float = CATALOG_SECONDS,
        build: Build = build_controller,
    ) -> None:
        self.store = store
        self.config = config
        self.settings = settings
        self.host = host
        self._tools = tools
        self._build = build
        self.catalog_seconds = catalog_seconds
        self.clock = SystemClock()
        self.leadership = LeaderLock(
            store,
            config.lock_name,
            owner or _owner(),
            config.lease_seconds,
            released=lambda: store.controller.notify_controller(config.name),
        )
        self.owner = self.leadership.owner
        self._sources: dict[str, _Source] = {}
        #: definition versions already read, by project (with a source or not)
        self._seen: dict[str, datetime | None] = {}
        self._catalog_at = float("-inf")
        self._woken: set[str] = set()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._listener: _Listener | None = None
        if config.repo:  # the host's own source fails at start, as it always did
            default = _Source(DEFAULT_PROJECT, DEFAULT_PROJECT_ID, config, host)
            default.controller = self._controller(default, strict=True)
            self._sources[DEFAULT_PROJECT] = default
        self.refresh(force=True)

    # ---------------------------------------------------------------- the catalog

    def refresh(self, *, force: bool = False) -> None:
        """Read the project catalog again (every :attr:`catalog_seconds`, or now with
        ``force``): sources added, redefined or archived since."""
        now = time.monotonic()
        if not force and now - self._catalog_at < self.catalog_seconds:
            return
        self._catalog_at = now
        try:
            records = self.store.projects.list_projects(status="active")
        except Exception as exc:  # the database is away: keep the sources known
            log.warning("reading the project catalog failed: %s", exc)
            return
        active = {r.name for r in records}
        for record in records:
            if record.name != DEFAULT_PROJECT and self._seen.get(record.name) != record.updated_at:
                self._define(record)
        for name in [n for n in self._seen if n not in active]:
            self._seen.pop(name)
            self._drop(name)
        if self._listener is not None:
            self._listener.ensure(bool(self._sources))

    def _define(self, record: ProjectRecord) -> None:
        """Project ``record``'s source as its definition now says (``None``: it has none)."""
        self._seen[record.name] = record.updated_at
        self._drop(record.name)
        try:
            context = self.host.of_project(record.name, record.definition)
            config = project_source(
                context.config.controller, base_dir=context.root, host=self.config
            )
        except KneoError as exc:  # the catalog checked it when it was written
            log.warning("project %s: its controller block is invalid: %s", record.name, exc)
            return
        if config.repo:
            with self._lock:
                self._sources[record.name] = _Source(record.name, record.id, config, context)
            log.info("project %s: reconciling %s", record.name, reduce_url(config.repo))

    def _drop(self, project: str) -> None:
        with self._lock:
            gone = self._sources.pop(project, None)
        if gone is not None and gone.controller is not None:
            gone.controller.close()

    def sources(self) -> dict[str, ControllerConfig]:
        """The sources known now, by project."""
        with self._lock:
            return {name: s.config for name, s in self._sources.items()}

    def controller_for(self, project: str) -> Controller | None:
        """Project ``project``'s controller, once built here (this process leads)."""
        with self._lock:
            source = self._sources.get(project)
        return source.controller if source is not None else None

    # ---------------------------------------------------------------- building

    def _controller(self, source: _Source, *, strict: bool = False) -> Controller | None:
        """``source``'s controller, built now if need be; ``None`` (its error recorded in
        its project's status) when it cannot be. ``strict``: raise instead."""
        if source.controller is not None:
            return source.controller
        project = source.project
        try:
            uses_host_tools = project == DEFAULT_PROJECT or not source.context.config.tool_registry
            source.controller = self._build(
                self.store.for_project(project),
                source.config,
                self.settings,
                tools=self._tools if uses_host_tools else None,
                project=source.context,
                leadership=SharedLeadership(self.leadership),
                on_wake=lambda: self.request_reconcile(project),
            )
            source.error = None
            return source.controller
        except Exception as exc:
            if strict:
                raise
            error = {
                "stage": "config",
                "code": exc.code if isinstance(exc, KneoError) else ErrorCode.internal_error,
                "message": exc.message if isinstance(exc, KneoError) else str(exc),
            }
            if error != source.error:
                log.warning("project %s: cannot reconcile: %s", project, error["message"])
                _record_error(self.store, source, error, self.owner)
            source.error = error
            return None

    # ---------------------------------------------------------------- passes

    def reconcile_due(self) -> list[ReconcileResult]:
        """A pass of the sources that are due or woken, if this process leads (or becomes
        the leader); the one result of standing by otherwise."""
        self.refresh()
        if not self._sources:
            self.step_down()  # nothing to lead
            return [self.standing_by()]
        if not self.leadership.try_lead():
            return [self.standing_by()]
        now = time.monotonic()
        with self._lock:
            woken, self._woken = self._woken, set()
            due = [s for s in self._sources.values() if s.project in woken or s.due <= now]
        results = []
        for source in sorted(due, key=lambda s: s.due):
            if not self.leadership.is_leader:
                break
            results.append(self._pass(source))
        return results

    def _pass(self, source: _Source) -> ReconcileResult:
        controller = self._controller(source)
        if controller is None:
            result = ReconcileResult(None, self.clock.now(), project=source.project)
            result.error = source.error
        else:
            result = controller.reconcile_once()
        source.due = time.monotonic() + source.config.interval
        return result

    def idle_seconds(self) -> float:
        """Until the next source is due, or the catalog is read again."""
        now = time.monotonic()
        with self._lock:
            dues = [s.due for s in self._sources.values()]
        return max(0.0, min([*dues, self._catalog_at + self.catalog_seconds]) - now)

    def request_reconcile(self, project: str | None = None) -> None:
        """Wake the loop for ``project``'s source now (``None``: every source)."""
        with self._lock:
            if project is None:
                self._woken.update(self._sources)
            else:
                self._woken.add(project)
        self._wake.set()

    def _notified(self, project_id: int, name: str) -> None:
        """A request queued for a source, or a lock released (the listener's call)."""
        with self._lock:
            found = next(
                (
                    s.project
                    for s in self._sources.values()
                    if s.project_id == project_id and s.config.name == name
                ),
                None,
            )
        if found is not None:
            self.request_reconcile(found)
        elif (project_id, name) == (DEFAULT_PROJECT_ID, self.config.name):
            self._wake.set()  # the leader lock was released: a standby looks now
        # else a source the catalog has not shown yet: its first pass takes the request

    # ---------------------------------------------------------------- leadership

    @property
    def is_leader(self) -> bool:
        return self.leadership.is_leader

    def lock_free(self) -> bool:
        """Whether this process may try to lead: some source exists and nobody holds the
        lock. Without a source it reads nothing but the catalog, now and then."""
        self.refresh()
        return bool(self._sources) and self.leadership.lock_free()

    def still_leader(self) -> bool:
        return self.leadership.still_leader()

    def step_down(self) -> None:
        self.leadership.step_down()

    def standing_by(self) -> ReconcileResult:
        result = ReconcileResult(None, self.clock.now(), leader=False)
        lock = self.leadership.current() if self._sources else None
        result.stats["leader"] = lock.owner if lock else None
        return result

    # ---------------------------------------------------------------- the loop's

    def clear_wake(self) -> None:
        self._wake.clear()

    def wait_for_wake(self, seconds: float) -> bool:
        return self._wake.wait(seconds)

    def start_wakeups(self) -> _Listener:
        """The one listener for every project's requests, running while a source exists."""
        self._listener = _Listener(self)
        self._listener.ensure(bool(self._sources))
        return self._listener

    def watch_targets(self) -> dict[str, tuple[Path, Triggerable]]:
        """The local repositories of the sources built here, by project."""
        with self._lock:
            built = [s.controller for s in self._sources.values() if s.controller is not None]
        return {
            c.project: (path, c)
            for c in built
            if (path := getattr(c.source, "watch_path", None)) is not None
        }

    def run(
        self,
        stop: threading.Event,
        *,
        on_result: Callable[[ReconcileResult], None] | None = None,
        watch: bool = True,
    ) -> None:
        """Lead (or stand by) until ``stop`` is set; see :class:`ControllerLoop`."""
        ControllerLoop(self, stop, on_result=on_result, watch=watch).run()

    def close(self) -> None:
        """Close every source's repository handle."""
        with self._lock:
            built = [s.controller for s in self._sources.values() if s.controller is not None]
        for controller in built:
            controller.close()


class _Listener:
    """The listener of :meth:`ProjectControllers.start_wakeups`: started while a source
    exists (an install without one polls nothing), stopped by the loop."""

    def __init__(self, owner: ProjectControllers) -> None:
        self.owner = owner
        self._wakeups: ControllerWakeups | None = None
        self._stopped = False
        self._lock = threading.Lock()

    def ensure(self, running: bool) -> None:
        with self._lock:
            if running and self._wakeups is None and not self._stopped:
                self._wakeups = self.owner.store.controller.controller_wakeups(
                    self.owner._notified, poll_seconds=self.owner.config.poll_seconds
                )
            elif not running and self._wakeups is not None:
                self._wakeups.stop()
                self._wakeups = None

    def stop(self, timeout: float = 5.0) -> None:
        with self._lock:
            self._stopped = True
            wakeups, self._wakeups = self._wakeups, None
        if wakeups is not None:
            wakeups.stop(timeout)


def _record_error(store: Store, source: _Source, error: dict[str, str], owner: str) -> None:
    """A source that cannot be built, in its project's controller status (and audited once
    per new error), as a failed pass would be."""
    try:
        view = store.for_project(source.project)
        previous = view.registry.get_controller_status(source.config.name)
        text = f"{error['code']}: {error['message']}"
        details: dict[str, Any] = {
            **previous.details,
            "source": reduce_url(source.config.repo or ""),
            "leader": owner,
            "interval": source.config.interval,
            "last_error_stage": error["stage"],
        }
        with view.transaction() as tx:
            tx.set_controller_status(
                name=source.config.name,
                last_reconcile_started_at=store.clock.now(),
                last_reconcile_duration_seconds=0.0,
                last_error=text,
                details=details,
            )
            if text != previous.last_error:
                tx.add_audit("controller.reconcile_failed", actor=ACTOR, payload=dict(error))
    except Exception as exc:  # the next pass records it again
        log.warning("recording project %s's controller error failed: %s", source.project, exc)


def _owner() -> str:
    """This process's name as a leader (a controller's, :class:`Controller`)."""
    return f"{socket.gethostname()}:{os.getpid()}:{new_id('ctl', 4)}"


__all__ = ["CATALOG_SECONDS", "ProjectControllers"]
