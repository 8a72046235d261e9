"""Paging, filtering and sorting for list routes, and the metadata echoed back.

``limit`` defaults to, and is capped at, ``KNEO_SERV_MAX_LIST_ITEMS`` (never above 1000);
``sort_by`` must be one of the route's sortable fields and ``sort_order`` is ``asc`` or
``desc``. Every list response carries ``count, total, limit, offset, sort_by, sort_order``
next to its collection field.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import Query, Request

from kneo.errors import InvalidRequest
from kneo.store.base import MAX_OFFSET, check_offset

HARD_LIMIT_CAP = 1000
#: ``offset`` of every list route: its bounds are in the OpenAPI document and enforced by
#: :func:`~kneo.store.base.check_offset` as ``400 invalid_request`` (a value beyond every
#: backend's integer used to reach the database and fail there).
OFFSET: Any = Query(
    0, description="Items to skip.", json_schema_extra={"minimum": 0, "maximum": MAX_OFFSET}
)


@dataclass(frozen=True)
class PageParams:
    limit: int
    offset: int
    sort_by: str
    sort_order: Literal["asc", "desc"]

    def metadata(self, count: int, total: int | None) -> dict[str, Any]:
        return {
            "count": count,
            "total": total,
            "limit": self.limit,
            "offset": self.offset,
            "sort_by": self.sort_by,
            "sort_order": self.sort_order,
        }


def paging(
    sortable: Sequence[str], default_sort: str, default_order: Literal["asc", "desc"] = "desc"
) -> Callable[..., PageParams]:
    """A dependency parsing ``limit, offset, sort_by, sort_order`` for one list route."""
    allowed = tuple(sortable)

    def dependency(
        request: Request,
        limit: int | None = Query(None, ge=1, description="Page size (capped)."),
        offset: int = OFFSET,
        sort_by: str = Query(default_sort, description=f"One of: {', '.join(allowed)}."),
        sort_order: Literal["asc", "desc"] = Query(default_order),
    ) -> PageParams:
        cap = min(
            request.app.state.settings.limits.max_list_items or HARD_LIMIT_CAP, HARD_LIMIT_CAP
        )
        check_offset(offset)
        if sort_by not in allowed:
            raise InvalidRequest(
                f"sort_by must be one of {', '.join(allowed)}; got {sort_by!r}",
                allowed=list(allowed),
            )
        return PageParams(
            limit=min(limit or cap, cap), offset=offset, sort_by=sort_by, sort_order=sort_order
        )

    return dependency


def paginate_items(
    items: Sequence[dict[str, Any]], params: PageParams
) -> tuple[list[dict[str, Any]], int]:
    """Sort and slice already-loaded items (for sources without server-side paging)."""

    present = [item for item in items if item.get(params.sort_by) is not None]
    missing = [item for item in items if item.get(params.sort_by) is None]
    present.sort(key=lambda item: item[params.sort_by], reverse=params.sort_order == "desc")
    ordered = present + missing  # items without the field always sort last
    return ordered[params.offset : params.offset + params.limit], len(items)
