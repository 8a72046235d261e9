"""Every query parameter is honoured or refused, on every route.

FastAPI ignores a query parameter a route does not declare, so ``GET /v1/runs?has_errors=1``
(a typo, or a filter of another platform's) used to answer every run as if it had been
applied. :class:`StrictQueryRoute` is the route class of every API router: before the
handler runs it compares the request's query names with the ones the route declares (its
own and its dependencies', the same list the OpenAPI document shows) and answers
``422 unknown_query_parameters`` naming the others, with the names the route does take.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from kneo.errors import ErrorCode, ValidationFailed


def declared_query(route: APIRoute) -> frozenset[str]:
    """The query names ``route`` reads: its parameters' and its dependencies' (aliases
    as sent on the wire)."""
    names: set[str] = set()
    stack: list[Dependant] = [route.dependant]
    while stack:
        dependant = stack.pop()
        names.update(param.alias for param in dependant.query_params)
        stack.extend(dependant.dependencies)
    return frozenset(names)


def check_query(request: Request, allowed: frozenset[str]) -> None:
    """``422 unknown_query_parameters`` when the request names a query parameter outside
    ``allowed``."""
    unknown = sorted({name for name in request.query_params if name not in allowed})
    if unknown:
        raise ValidationFailed(
            f"unknown query parameter{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}"
            f" (this route takes: {', '.join(sorted(allowed)) or 'none'})",
            code=ErrorCode.unknown_query_parameters,
            parameters=unknown,
            allowed=sorted(allowed),
        )


class StrictQueryRoute(APIRoute):
    """An API route that refuses the query parameters it does not declare."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        allowed = declared_query(self)

        async def strict(request: Request) -> Response:
            if request.query_params:
                check_query(request, allowed)
            return await handler(request)

        return strict


__all__ = ["StrictQueryRoute", "check_query", "declared_query"]
