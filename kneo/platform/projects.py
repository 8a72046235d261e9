"""One platform manager per project: :meth:`PlatformManager.for_project
<kneo.platform.manager.PlatformManager.for_project>`.

A project (tenant) runs on the same engine, database and process as every other: its manager
is built on the store's view of that project (:meth:`kneo.store.Store.for_project`), with the
project's own context (its definition: environments and policies, secrets, MCP servers,
network, functions, skills, tools; :meth:`ProjectContext.of_project
<kneo.spec.project.ProjectContext.of_project>`). Managers are built on first use and kept;
a definition changed by an administrator (here or in another process) is seen within
:data:`RECHECK_SECONDS`, when the project's manager is built again. An archived or unknown
project is ``project_not_found``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from kneo.clock import utc_iso
from kneo.projects import check_project_name
from kneo.redaction import remember_secrets
from kneo.spec.compiler import SpecCompiler
from kneo.spec.project import ProjectContext
from kneo.tools.defaults import register_builtin_tools

if TYPE_CHECKING:
    from kneo.clock import Clock
    from kneo.settings import Settings
    from kneo.store import ProjectRecord, Store


class Manager(Protocol):
    """What a project's manager is built from: the root's store, context, settings, tools
    and clock (the platform manager; this module does not import it)."""

    store: Store
    project: ProjectContext | None
    settings: Settings
    compiler: SpecCompiler
    clock: Clock

    def close(self) -> None: ...


M = TypeVar("M", bound=Manager)

#: How long a project's manager is used before its definition is read again.
RECHECK_SECONDS = 5.0
#: Project managers a process keeps built at most; past it, the one built longest ago goes
#: (and is built again on its project's next request).
MAX_MANAGERS = 256


@dataclass
class _Built(Generic[M]):
    manager: M
    updated_at: datetime
    checked: float


class ProjectManagers(Generic[M]):
    """The managers of the projects other than the root manager's own, by name; ``build``
    makes one (the root's class, called with the root's keyword arguments)."""

    def __init__(
        self,
        root: M,
        build: Callable[..., M],
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.root = root
        self._build_manager = build
        self._built: dict[str, _Built[M]] = {}
        self._lock = threading.Lock()
        self._monotonic = monotonic

    def get(self, name: str) -> M:
        """Project ``name``'s manager (``project_not_found`` when it is unknown or archived)."""
        if name == self.root.store.project:
            return self.root
        now = self._monotonic()
        with self._lock:
            built = self._built.get(name)
        if built is not None and now - built.checked < RECHECK_SECONDS:
            return built.manager
        store = self.root.store.for_project(name)  # project_not_found when it is not active
        record = store.projects.get_project(name)
        with self._lock:
            built = self._built.get(name)
            if built is None or built.updated_at != record.updated_at:
                if built is not None:
                    built.manager.close()
                built = _Built(self._build(name, record.definition), record.updated_at, now)
                self._built.pop(name, None)
                self._built[name] = built
                if len(self._built) > MAX_MANAGERS:  # the oldest built goes
                    self._built.pop(next(iter(self._built))).manager.close()
            built.checked = now
            return built.manager

    def _build(self, name: str, definition: dict[str, Any] | None) -> M:
        root = self.root
        # an embedder's manager without a project: the process's own
        host = root.project or ProjectContext.discover(settings=root.settings)
        context = host.of_project(name, definition)
        declared = context.config.declared_secrets().values()
        remember_secrets([value for var in declared if (value := root.settings.secret(var))])
        compiler = root.compiler
        if context.config.tool_registry:
            compiler = SpecCompiler(
                runtime_registry=compiler.runtime_registry,
                tool_registry=register_builtin_tools(context.tool_registry()),
            )
        return self._build_manager(
            compiler=compiler,
            run_state_store=root.store.for_project(name),
            settings=root.settings,
            project=context,
            clock=root.clock,
        )

    def forget(self, name: str) -> None:
        """Drop project ``name``'s manager now (it was archived here)."""
        with self._lock:
            built = self._built.pop(name, None)
        if built is not None:
            built.manager.close()

    def close(self) -> None:
        """Close every project's manager (the root manager is its owner's to close)."""
        with self._lock:
            built, self._built = list(self._built.values()), {}
        for entry in built:
            entry.manager.close()


class ProjectCatalog:
    """The project catalog's reads and an administrator's writes, over the root store
    (``store.projects``, global), each write audited in the project it changes."""

    def __init__(self, store: Store, host: ProjectContext, forget: Callable[[str], None]) -> None:
        self.store = store
        #: the host's context, whose ``of_project`` checks a definition
        self.host = host
        self._forget = forget

    def list_projects(self, visible: Callable[[list[str]], list[str]]) -> list[dict[str, Any]]:
        """The active projects ``visible`` keeps of the catalog's names (each caller sees its
        own; an administrator every one), oldest first."""
        records = {p.name: p for p in self.store.projects.list_projects(status="active")}
        return [_summary(records[name]) for name in visible(list(records))]

    def get_project(self, name: str, *, definition: bool = False) -> dict[str, Any]:
        """One active project (``definition``: with its definition, for an administrator)."""
        self.store.for_project(name)  # project_not_found when not active
        return _summary(self.store.projects.get_project(name), definition=definition)

    def create_project(
        self, name: str, definition: Mapping[str, Any] | None, *, actor: str
    ) -> dict[str, Any]:
        """A new project (a project config document as its ``definition``, checked here,
        errors naming the field), audited in it as ``project.created``."""
        check_project_name(name, field="name")
        checked = self._checked(name, definition)
        record = self.store.projects.create_project(name, definition=checked)
        self._audit(name, "project.created", actor)
        return _summary(record, definition=True)

    def update_project(
        self, name: str, definition: Mapping[str, Any] | None, *, actor: str
    ) -> dict[str, Any]:
        """Replace an active project's definition (audited as ``project.updated``); its
        manager is built again with it (in other processes within :data:`RECHECK_SECONDS`)."""
        self.store.for_project(name)
        checked = self._checked(name, definition)
        record = self.store.projects.update_project(name, definition=checked)
        self._audit(name, "project.updated", actor)
        return _summary(record, definition=True)

    def archive_project(self, name: str, *, actor: str) -> dict[str, Any]:
        """Archive a project (audited as ``project.archived``, while it can still be written):
        its records stay until retention removes them, and nothing reaches it any more."""
        self._audit(name, "project.archived", actor)
        record = self.store.projects.update_project(name, status="archived")
        self._forget(name)
        return _summary(record)

    def _checked(self, name: str, definition: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """``definition`` as a project config document (validated, errors naming the field)."""
        if definition is None:
            return None
        self.host.of_project(name, definition)  # E_SCHEMA naming the field when it is not one
        return dict(definition)

    def _audit(self, name: str, event_type: str, actor: str) -> None:
        with self.store.for_project(name).transaction() as tx:
            tx.add_audit(event_type, actor=actor, payload={"project": name})


def _summary(record: ProjectRecord, *, definition: bool = False) -> dict[str, Any]:
    """A project as the API answers it (its definition only where asked)."""
    out: dict[str, Any] = {
        "name": record.name,
        "status": record.status,
        "created_at": utc_iso(record.created_at),
        "updated_at": utc_iso(record.updated_at),
    }
    if definition:
        out["definition"] = record.definition
    return out


__all__ = ["RECHECK_SECONDS", "Manager", "ProjectCatalog", "ProjectManagers"]
