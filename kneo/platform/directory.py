"""The projects as a process's background work sees them: the worker, the sweeper and the
notification dispatcher serve every project of the database, not only their own.

:class:`ProjectDirectory` lists the active projects with their configs (their definitions,
parsed once per change; the root manager's own project, ``default``, is the host's
``.kneo/config.yaml``), read again at most every :data:`RECHECK_SECONDS`, and hands a
project's work to that project's manager (:meth:`PlatformManager.for_project
<kneo.platform.manager.PlatformManager.for_project>`), built only when the project has some.
:class:`ProjectSlots` tells a worker which projects are at their ``max_running_runs``, so
its claim skips their queue records (one grouped count per poll, only when some project
sets the limit).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from kneo.logs import get_logger
from kneo.platform.projects import RECHECK_SECONDS
from kneo.spec.limits import ProjectLimits
from kneo.spec.project import ProjectConfig, ProjectContext

if TYPE_CHECKING:
    from kneo.settings import Settings
    from kneo.store import Store
    from kneo.store.projects import ProjectRecord

log = get_logger("kneo_serv.projects")


class DirectoryRoot(Protocol):
    """What a directory is built on: the root manager (``PlatformManager`` is one)."""

    @property
    def store(self) -> Store: ...

    @property
    def project(self) -> ProjectContext | None: ...

    @property
    def settings(self) -> Settings: ...

    def for_project(self, name: str) -> Any: ...


@dataclass(frozen=True)
class ProjectEntry:
    """One active project: its id (what its records carry), name and config."""

    id: int
    name: str
    config: ProjectConfig

    @property
    def limits(self) -> ProjectLimits:
        return self.config.limits


class ProjectDirectory:
    """The active projects of the root manager's database (see the module docstring)."""

    def __init__(
        self,
        root: DirectoryRoot,
        *,
        recheck: float = RECHECK_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.root = root
        self.recheck = recheck
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._entries: list[ProjectEntry] | None = None
        self._running: dict[int, int] = {}
        self._read_at = 0.0
        #: parsed definitions by project id: (updated_at, config)
        self._configs: dict[int, tuple[datetime, ProjectConfig]] = {}
        self._host: ProjectContext | None = None

    def entries(self) -> list[ProjectEntry]:
        """The active projects, oldest first (``default`` first), read again when the last
        read is :attr:`recheck` seconds old."""
        now = self._monotonic()
        with self._lock:
            if self._entries is not None and now - self._read_at < self.recheck:
                return self._entries
        store = self.root.store
        records = store.projects.list_projects(status="active")
        own = self.root.project.config if self.root.project is not None else ProjectConfig()
        entries = [
            ProjectEntry(
                r.id,
                r.name,
                own if r.id == store.project_id else self._config(r.id, r.name, r),
            )
            for r in records
        ]
        running = {
            e.id: e.limits.max_running_runs
            for e in entries
            if e.limits.max_running_runs is not None
        }
        with self._lock:
            self._entries, self._running, self._read_at = entries, running, now
            live = {e.id for e in entries}
            self._configs = {k: v for k, v in self._configs.items() if k in live}
        return entries

    def refresh(self) -> None:
        """Read the catalog again at the next :meth:`entries` (a project was just made)."""
        with self._lock:
            self._entries = None

    def entry(self, project_id: int) -> ProjectEntry | None:
        return next((e for e in self.entries() if e.id == project_id), None)

    def running_limits(self) -> dict[int, int]:
        """``max_running_runs`` by project id, of the projects that set it (as last read)."""
        self.entries()
        return self._running

    def manager(self, project_id: int) -> Any:
        """The manager of project ``project_id`` (a record's project): the root manager for
        its own, else :meth:`for_project` by the name the store resolves (``project_not_found``
        when it is archived or gone)."""
        store = self.root.store
        if project_id == store.project_id:
            return self.root
        return self.root.for_project(store.for_project(project_id).project)

    def _config(self, project_id: int, name: str, record: ProjectRecord) -> ProjectConfig:
        """Project ``name``'s config from its definition, parsed again only when it changed;
        a definition that no longer validates (written by an older Kneo) counts as empty,
        logged."""
        with self._lock:
            known = self._configs.get(project_id)
        if known is not None and known[0] == record.updated_at:
            return known[1]
        if self._host is None:
            root = self.root
            self._host = root.project or ProjectContext.discover(settings=root.settings)
        try:
            config = self._host.of_project(name, record.definition).config
        except Exception:
            log.exception("project %s: its definition is not a project config", name)
            config = ProjectConfig()
        with self._lock:
            self._configs[project_id] = (record.updated_at, config)
        return config


class ProjectSlots:
    """Which projects a worker's claim skips: those whose executing runs reached their
    ``max_running_runs`` (counted at most every ``refresh`` seconds, in one grouped query,
    and only while some project sets the limit; with none, this reads nothing)."""

    def __init__(
        self,
        directory: ProjectDirectory,
        store: Store,
        *,
        refresh: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.directory = directory
        self.store = store
        self.refresh = refresh
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._full: frozenset[int] = frozenset()
        self._counted_at = -1e18

    def excluded(self) -> frozenset[int]:
        """The ids of the projects at their limit now (as last counted)."""
        limits = self.directory.running_limits()
        if not limits:
            return frozenset()
        now = self._monotonic()
        with self._lock:
            if now - self._counted_at < self.refresh:
                return self._full
        counts = self.store.limits.executing_runs(sorted(limits))
        full = frozenset(p for p, cap in limits.items() if counts.get(p, 0) >= cap)
        with self._lock:
            self._full, self._counted_at = full, now
        return full

    def full(self, project_id: int) -> None:
        """A start of ``project_id``'s was refused at its limit: skip it until the next
        count."""
        with self._lock:
            self._full = self._full | {project_id}

    def ended(self, project_id: int) -> None:
        """A run of ``project_id`` stopped executing here: count again at the next claim
        (when the project is limited)."""
        if project_id in self._full:
            with self._lock:
                self._counted_at = -1e18


__all__ = ["DirectoryRoot", "ProjectDirectory", "ProjectEntry", "ProjectSlots"]
