"""No silent fields: every parameter a route declares, and every field of every request body
it takes, is read by the route's own code (issue 57, item 5).

Resume and continue once accepted ``metadata`` and dropped it: the schema said one thing and
the handler did another, and no test asked. Read from the routes' source: each handler's
parameters are used in its body, and each body model's fields are read by attribute from the
body (``body.metadata``), in the handler or in a function of the service it hands the body to
(followed by name, through lambdas), or handed on whole (``body.model_dump()``, a policy
stored as sent). A bulk read (``check_limits(body)``, a hash of the body) does not count: it
sizes or digests a field, it does not act on it.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
import typing
from collections.abc import Callable
from types import FunctionType
from typing import Any

import pytest
from fastapi.routing import APIRoute
from pydantic import BaseModel

from kneo.service import create_app
from kneo.settings import Settings

#: Parameters FastAPI fills that a handler may take only to trigger a dependency.
_ALLOWED_UNUSED: frozenset[str] = frozenset()
#: Functions that read a whole body only to size or digest it: not followed.
_BULK = frozenset({"check_limits", "body_hash"})
#: The model's own method that hands every field on (a policy stored as sent).
_WHOLE = "model_dump"


def _routes() -> list[APIRoute]:
    """The app's API routes, through the routers it includes."""
    found: list[APIRoute] = []
    pending: list[Any] = list(create_app(False, settings=Settings.from_env({})).routes)
    while pending:
        route = pending.pop(0)
        if isinstance(route, APIRoute) and all(
            (route.endpoint, route.path) != (f.endpoint, f.path) for f in found
        ):
            found.append(route)
        pending += getattr(getattr(route, "original_router", None), "routes", [])
    return found


def _tree(func: Callable[..., Any]) -> ast.AST:
    return ast.parse(textwrap.dedent(inspect.getsource(func)))


def _names_used(func: Callable[..., Any]) -> set[str]:
    body = _tree(func).body[0]
    assert isinstance(body, ast.FunctionDef | ast.AsyncFunctionDef)
    return {
        n.id
        for statement in body.body
        for n in ast.walk(statement)
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
    }


def _callee(node: ast.expr, scope: dict[str, Any]) -> FunctionType | None:
    """A function of the service named by ``node`` (a module-level name), else ``None``."""
    if isinstance(node, ast.Name):
        found = scope.get(node.id)
        if isinstance(found, FunctionType) and found.__module__.startswith("kneo.service"):
            return found
    return None


def _is_name(node: ast.expr, name: str) -> bool:
    return isinstance(node, ast.Name) and node.id == name


def _field_reads(func: FunctionType, param: str, seen: set[tuple[Any, str]]) -> set[str]:
    """Attributes read from ``param`` in ``func``, and in the service functions it passes
    ``param`` to (by position or keyword)."""
    if (func, param) in seen:
        return set()
    seen.add((func, param))
    reads: set[str] = set()
    for node in ast.walk(_tree(func)):
        if isinstance(node, ast.Attribute) and _is_name(node.value, param):
            reads.add(node.attr)
        if not isinstance(node, ast.Call):
            continue
        callee = _callee(node.func, func.__globals__)
        if callee is None or callee.__name__ in _BULK:
            continue
        names = list(inspect.signature(callee).parameters)
        for i, arg in enumerate(node.args):
            if _is_name(arg, param) and i < len(names):
                reads |= _field_reads(callee, names[i], seen)
        for keyword in node.keywords:
            if _is_name(keyword.value, param) and keyword.arg:
                reads |= _field_reads(callee, keyword.arg, seen)
    return reads


def _body_models(route: APIRoute) -> list[tuple[str, type[BaseModel]]]:
    hints = typing.get_type_hints(route.endpoint)
    out = []
    for name in inspect.signature(route.endpoint).parameters:
        for candidate in typing.get_args(hints.get(name)) or (hints.get(name),):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                out.append((name, candidate))
    return out


ROUTES = _routes()


def _id(route: APIRoute) -> str:
    return f"{sorted(route.methods)[0]} {route.path}"


@pytest.mark.parametrize("route", ROUTES, ids=_id)
def test_every_declared_parameter_is_used(route: APIRoute) -> None:
    declared = set(inspect.signature(route.endpoint).parameters) - _ALLOWED_UNUSED
    unused = declared - _names_used(route.endpoint)
    assert not unused, f"{_id(route)} declares {sorted(unused)} and never reads them"


BODY_ROUTES = [r for r in ROUTES if _body_models(r)]


@pytest.mark.parametrize("route", BODY_ROUTES, ids=_id)
def test_every_body_field_is_read(route: APIRoute) -> None:
    assert isinstance(route.endpoint, FunctionType)
    for param, model in _body_models(route):
        reads = _field_reads(route.endpoint, param, set())
        unread = set() if _WHOLE in reads else set(model.model_fields) - reads
        assert not unread, f"{_id(route)}: {model.__name__} fields {sorted(unread)} are dropped"


def test_the_walk_sees_a_dropped_field() -> None:
    """The check can fail: a handler that hands its body on but never reads one field."""

    class Body(BaseModel):
        kept: str
        dropped: str

    def handler(body: Body) -> str:
        return body.kept

    assert _field_reads(handler, "body", set()) == {"kept"}
    assert set(Body.model_fields) - _field_reads(handler, "body", set()) == {"dropped"}
    assert BODY_ROUTES, "no route takes a body: the walk found nothing to check"
