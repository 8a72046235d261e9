"""``GET /v1/skills``: the skills the project declares, which any of its specs' agents may
switch on by name and a run's skills overlay may add (``skills:`` in ``.kneo/config.yaml``,
docs/project_config.md). Read-only; a spec's own skills are listed by ``kneo spec skills``
and ``POST /v1/specs/explain``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from kneo.platform import PlatformManager
from kneo.redaction import redact_mapping
from kneo.service.auth import require_scope
from kneo.service.dependencies import manager_dep
from kneo.service.pagination import PageParams, paginate_items, paging
from kneo.service.query_params import StrictQueryRoute
from kneo.spec.skills import project_catalog

router = APIRouter(tags=["specs"], route_class=StrictQueryRoute)


@router.get("/skills", dependencies=[Depends(require_scope("specs:read"))])
async def list_skills(  # async: nothing to wait for
    page: PageParams = Depends(paging(("name",), "name", "asc")),
    manager: PlatformManager = Depends(manager_dep),
) -> dict[str, Any]:
    """The project's skills by name, each with its description, instructions, tools and the
    file of the project its instructions are kept in (``path``)."""
    project = manager.project
    catalog = project_catalog(project.config) if project is not None else []
    items, total = paginate_items(catalog, page)
    # a key pasted into instructions never leaves (they are the project's words, not personal)
    shown = [redact_mapping(item, show_personal=True) for item in items]
    return {"skills": shown, **page.metadata(len(shown), total)}


__all__ = ["router"]
