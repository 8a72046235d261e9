"""Projects on the :class:`~kneo.store.api.Store` (``projects``, migration 0026): the unit of
tenancy, and the names a project's view is opened by (:meth:`Store.for_project
<kneo.store.api.Store.for_project>`).

A project is ``active`` or ``archived``; an archived project keeps its rows (retention removes
them later) but no view of it is opened any more. ``definition`` is the project's JSON
definition, written by a platform administrator; ``None`` for ``default`` means the host's own
configuration. The facet is global: it is the same on every view.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict, Unpack

import sqlalchemy as sa

from kneo.errors import Conflict, ErrorCode, IllegalTransition, InvalidRequest
from kneo.projects import (
    DEFAULT_PROJECT,
    DEFAULT_PROJECT_ID,
    check_project_name,
    project_not_found,
)
from kneo.store import tables as t
from kneo.store.base import Facet, StoreBase
from kneo.store.row_records import from_row

#: A project's statuses: ``active``, or ``archived`` (no view opens on it).
PROJECT_STATUSES: tuple[str, ...] = ("active", "archived")
#: How long a name resolved for :meth:`ProjectsFacet.resolve` is trusted before it is read
#: again: another process's archive is seen within this; this process's at once.
RESOLVE_SECONDS = 5.0


class ProjectChanges(TypedDict, total=False):
    """What :meth:`ProjectsFacet.update_project` may change."""

    definition: dict[str, Any] | None
    status: str


@dataclass(frozen=True)
class ProjectRecord:
    """One project: its id (what its rows carry), name, status and definition."""

    id: int
    name: str
    status: str
    definition: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime


class ProjectsFacet(Facet):
    """Create, read, list, define and archive projects (``store.projects``); every method
    commits on its own."""

    def __init__(self, store: StoreBase) -> None:
        super().__init__(store)
        self.project_id = DEFAULT_PROJECT_ID  # global: the same on every view
        self._resolved: dict[str | int, tuple[int, str, float]] = {}
        self._lock = threading.Lock()

    def create_project(
        self, name: str, *, definition: dict[str, Any] | None = None
    ) -> ProjectRecord:
        """A new active project named ``name`` (a plain name: ``invalid_name`` otherwise);
        ``already_exists`` when the name is taken, archived projects included."""
        check_project_name(name)
        now = self.clock.now()
        values: dict[str, Any] = {"name": name, "status": "active", "definition": definition}
        values |= {"created_at": now, "updated_at": now}
        with self._write() as conn:
            row = conn.execute(
                self.dialect.insert(t.projects)
                .values(**values)
                .on_conflict_do_nothing(index_elements=["name"])
                .returning(t.projects.c.id)
            ).first()
        if row is None:
            raise Conflict(f"project {name!r} already exists", code=ErrorCode.already_exists)
        return ProjectRecord(id=int(row[0]), **values)

    def get_project(self, project: str | int) -> ProjectRecord:
        """The project of that name (or id), archived or not; ``project_not_found`` when
        there is none."""
        p = t.projects.c
        key = p.name == project if isinstance(project, str) else p.id == project
        with self._read(snapshot=False) as conn:
            row = conn.execute(sa.select(t.projects).where(key)).mappings().first()
        if row is None:
            raise project_not_found(project)
        return from_row(ProjectRecord, row)

    def list_projects(self, *, status: str | None = None) -> list[ProjectRecord]:
        """Every project (of ``status`` only, if given), by id: ``default`` first."""
        p = t.projects.c
        stmt = sa.select(t.projects).order_by(p.id)
        if status is not None:
            stmt = stmt.where(p.status == _checked_status(status))
        with self._read(snapshot=False) as conn:
            return [from_row(ProjectRecord, row) for row in conn.execute(stmt).mappings()]

    def update_project(self, name: str, **changes: Unpack[ProjectChanges]) -> ProjectRecord:
        """Replace a project's ``definition`` (``None``: for ``default``, the host's own
        configuration), or archive it (``status="archived"``: no view of it opens from now
        on, its rows stay); archived projects included. A project is never made active again,
        and ``default`` cannot be archived (``illegal_transition``)."""
        status = changes.get("status")
        if status is not None and _checked_status(status) != "archived":
            raise IllegalTransition(f"a project cannot be made {status!r} again")
        if status is not None and name == DEFAULT_PROJECT:
            raise IllegalTransition("the default project cannot be archived")
        return self._update(name, **changes)

    def _update(self, name: str, **values: Any) -> ProjectRecord:
        p = t.projects.c
        with self._write() as conn:
            row = (
                conn.execute(
                    sa.update(t.projects)
                    .where(p.name == name)
                    .values(**values, updated_at=self.clock.now())
                    .returning(*t.projects.c)
                )
                .mappings()
                .first()
            )
        if row is None:
            raise project_not_found(name)
        self._forget(row["name"], row["id"])
        return from_row(ProjectRecord, row)

    def _resolve(self, project: str | int) -> tuple[int, str]:
        """The id and name of the active project named ``project`` (or of that id), for
        :meth:`Store.for_project <kneo.store.api.Store.for_project>`: ``project_not_found``
        when it is unknown or archived. Remembered for :data:`RESOLVE_SECONDS`, so opening a
        project's view per request reads the table once in a while, not every time."""
        now = time.monotonic()
        with self._lock:
            known = self._resolved.get(project)
        if known is not None and known[2] > now:
            return known[0], known[1]
        found = self.get_project(project)
        if found.status != "active":
            raise project_not_found(project)
        with self._lock:
            if len(self._resolved) >= 4096:
                self._resolved.clear()
            self._resolved[project] = (found.id, found.name, now + RESOLVE_SECONDS)
        return found.id, found.name

    def _forget(self, name: str, project_id: int) -> None:
        with self._lock:
            self._resolved.pop(name, None)
            self._resolved.pop(project_id, None)


def _checked_status(status: str) -> str:
    if status not in PROJECT_STATUSES:
        raise InvalidRequest(
            f"status must be one of {', '.join(PROJECT_STATUSES)}, got {status!r}",
            field="status",
        )
    return status


__all__ = ["PROJECT_STATUSES", "ProjectRecord", "ProjectsFacet"]
