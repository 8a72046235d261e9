"""Every route has a stable operation id from kneo.service.operation_ids (not FastAPI's
default), so clients generated from docs/openapi.json keep their method names."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.routing import iter_route_contexts

from kneo.service import create_app
from kneo.service.operation_ids import OPERATION_IDS, operation_id, route_key
from kneo.settings import Settings

ID = re.compile(r"^[a-z]+(-[a-z]+)*$")


@pytest.fixture(scope="module")
def app() -> Any:
    return create_app(configure_default_manager=False, settings=Settings(), mcp=True)


def _documented(app: Any) -> dict[tuple[str, str], str]:
    """(METHOD, path) -> operationId of every operation in the app's OpenAPI document."""
    return {
        (method.upper(), path): op["operationId"]
        for path, ops in app.openapi()["paths"].items()
        for method, op in ops.items()
    }


def test_every_documented_operation_takes_its_id_from_the_table(app: Any) -> None:
    missing = []
    for (method, path), op_id in _documented(app).items():
        key = (method, path.removeprefix("/v1"))
        if OPERATION_IDS.get(key) != op_id:
            missing.append(f"{method} {path} -> {op_id}")
    assert not missing, "add these routes to kneo/service/operation_ids.py: " + ", ".join(missing)


def test_the_table_names_only_routes_that_exist(app: Any) -> None:
    documented = {(m, p.removeprefix("/v1")) for m, p in _documented(app)}
    assert not set(OPERATION_IDS) - documented, sorted(set(OPERATION_IDS) - documented)


def test_ids_are_unique_lower_case_words() -> None:
    ids = list(OPERATION_IDS.values())
    assert len(set(ids)) == len(ids), [i for i in ids if ids.count(i) > 1]
    assert all(ID.match(i) for i in ids), [i for i in ids if not ID.match(i)]


def test_the_ids_the_issue_names() -> None:
    assert OPERATION_IDS[("GET", "/runs")] == "runs-list"
    assert OPERATION_IDS[("POST", "/human-tasks/{continuation_id}/resume")] == "human-tasks-resume"


def test_legacy_unversioned_aliases_resolve_to_the_same_id(app: Any) -> None:
    contexts = [c for c in iter_route_contexts(app.routes) if route_key(c) is not None]
    by_path = {(min(c.methods), c.path): operation_id(c) for c in contexts}
    assert by_path[("GET", "/runs")] == by_path[("GET", "/v1/runs")] == "runs-list"
    legacy = [(m, p) for m, p in by_path if (m, "/v1" + p) in by_path]
    # every route, the health probes too: each is served at the root and under /v1, but the
    # project catalog, which is new (/v1 only)
    aliased = [key for key in OPERATION_IDS if not key[1].startswith("/projects")]
    assert len(legacy) == len(aliased), legacy
    assert [k for k in legacy if by_path[k] != by_path[(k[0], "/v1" + k[1])]] == []


def test_an_unknown_route_falls_back_to_fastapis_default() -> None:
    from fastapi import APIRouter

    router = APIRouter()

    @router.get("/v1/not-in-the-table")
    def not_in_the_table() -> None: ...

    assert operation_id(router.routes[0]) == "not_in_the_table_v1_not_in_the_table_get"
