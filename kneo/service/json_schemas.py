"""``GET /schemas/<name>.schema.json``: the JSON Schemas the package ships, for editors.

Unauthenticated, like ``/openapi.json``: a schema describes the file formats and holds no
data. Each schema's ``$id`` is ``https://kneo.dev/schemas/<name>`` and its path here is the
same ``/schemas/<name>``, so a ``yaml-language-server`` modeline can point at a running service
(``$schema=http://kneo.example/schemas/spec.schema.json``) as well as at the copy ``kneo
init`` writes into ``.kneo/schemas/``. Only the files of the package's ``schemas`` folder are
served: the name is looked up, never joined into a path.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Response

from kneo.errors import NotFound
from kneo.service.query_params import StrictQueryRoute

router = APIRouter(tags=["schemas"], route_class=StrictQueryRoute)
FOLDER = Path(__file__).resolve().parents[1] / "schemas"


def shipped() -> dict[str, Path]:
    """File name -> file, of every schema in the package."""
    return {path.name: path for path in sorted(FOLDER.glob("*.schema.json"))}


@router.get("/schemas", include_in_schema=False)
def list_schemas() -> dict[str, list[str]]:
    """The names served under ``/schemas/``."""
    return {"schemas": list(shipped())}


@router.get("/schemas/{name}", include_in_schema=False)
def get_schema(name: str) -> Response:
    """One schema, as ``application/schema+json``; an unknown name is ``not_found``."""
    path = shipped().get(name)
    if path is None:
        raise NotFound(f"no schema named {name!r}; served: {', '.join(shipped())}", field="name")
    return Response(path.read_bytes(), media_type="application/schema+json")
