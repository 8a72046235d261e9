"""``/v1/projects``: the project catalog. Projects are the unit of tenancy (docs/projects.md).

Any signed-in caller lists the projects it may act in; a platform administrator (the
``projects:admin`` scope) lists, creates, redefines and archives every one. Acting *in* a
project is every other route's, with the ``X-Kneo-Project`` header or the
``/v1/projects/<name>/...`` path form. A project the caller has no grant in is
``404 project_not_found``, the answer for one that does not exist.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Request

from kneo.platform import PlatformManager
from kneo.projects import project_not_found
from kneo.service.auth import Principal, require_scope, require_signed_in
from kneo.service.dependencies import actor_of, manager_dep
from kneo.service.query_params import StrictQueryRoute
from kneo.service.schemas import CreateProjectRequest, ProjectDefinitionRequest

router = APIRouter(tags=["projects"], route_class=StrictQueryRoute)
ADMIN = "projects:admin"
NAME = Path(..., max_length=64, description="The project's name.")


@router.get("/projects")
def list_projects(
    principal: Principal = Depends(require_signed_in()),
    manager: PlatformManager = Depends(manager_dep),
) -> dict[str, Any]:
    """The active projects the caller may act in (every one for a platform administrator),
    oldest first, with the caller's home project."""
    return {"projects": manager.list_projects(principal.visible_projects), "home": principal.home}


@router.get("/projects/{project}")
def get_project(
    project: str = NAME,
    principal: Principal = Depends(require_signed_in()),
    manager: PlatformManager = Depends(manager_dep),
) -> dict[str, Any]:
    """One project the caller may act in; its definition for a platform administrator."""
    if not principal.visible_projects([project]):
        raise project_not_found(project)
    return manager.get_project(project, definition=principal.has(ADMIN))


@router.post("/projects", status_code=201, dependencies=[Depends(require_scope(ADMIN))])
def create_project(
    body: CreateProjectRequest, request: Request, manager: PlatformManager = Depends(manager_dep)
) -> dict[str, Any]:
    """Create a project (``409 already_exists`` when the name is taken, archived ones too)."""
    return manager.create_project(body.name, body.definition, actor=actor_of(request))


@router.put("/projects/{project}", dependencies=[Depends(require_scope(ADMIN))])
def update_project(
    body: ProjectDefinitionRequest,
    request: Request,
    project: str = NAME,
    manager: PlatformManager = Depends(manager_dep),
) -> dict[str, Any]:
    """Replace a project's definition; its runs started from now on use it."""
    return manager.update_project(project, body.definition, actor=actor_of(request))


@router.delete("/projects/{project}", dependencies=[Depends(require_scope(ADMIN))])
def archive_project(
    request: Request, project: str = NAME, manager: PlatformManager = Depends(manager_dep)
) -> dict[str, Any]:
    """Archive a project: nothing reaches it any more (``404``), its records stay until
    retention removes them. ``default`` cannot be archived."""
    return manager.archive_project(project, actor=actor_of(request))
