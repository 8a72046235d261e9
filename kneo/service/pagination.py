"""Paging, filtering and sorting for list routes, and the metadata echoed back.

``limit`` defaults to, and is capped at, ``KNEO_SERV_MAX_LIST_ITEMS`` (never above 1000);
``sort_by`` must be one of the route's sortable fields and ``sort_order`` is ``asc`` or
``desc``. Every list response carries ``count, total, limit, offset, sort_by, sort_order``
next to its collection field.

The big listings (runs, human tasks, audit events: :func:`listing`) page by keyset: a
page's ``next_cursor``, passed back as ``cursor``, gives the page after it at the cost of
the first. ``offset`` still works there up to ``KNEO_SERV_MAX_LIST_OFFSET`` (a deep offset
walks every row it skips); beyond, ``400 offset_too_deep`` says to use the cursor. ``total``
is always a number, exact by default (the seed's clients show it); an inbox's counts per
assignee come with ``include=counts`` (they visit every pending task). With
``KNEO_SERV_MAX_LIST_COUNT=N`` (opt-in) counting stops ``N`` rows past the page's end:
beyond, ``total`` is that number and ``total_capped`` is true, so a listing costs what its
page's depth does however many rows match; either way a client paging by ``offset`` until
``offset + count`` reaches ``total`` gets every row (``window``: the deepest ``offset``
served).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from fastapi import Depends, Query, Request

from kneo.errors import ErrorCode, InvalidRequest
from kneo.store.base import MAX_OFFSET, check_offset

HARD_LIMIT_CAP = 1000
#: ``offset`` of every list route: its bounds are in the OpenAPI document and enforced by
#: :func:`~kneo.store.base.check_offset` as ``400 invalid_request`` (a value beyond every
#: backend's integer used to reach the database and fail there).
OFFSET: Any = Query(
    0, description="Items to skip.", json_schema_extra={"minimum": 0, "maximum": MAX_OFFSET}
)


CURSOR: Any = Query(
    None,
    description="A page's next_cursor: the page after it (opaque; do not combine with offset).",
)
INCLUDE: Any = Query(
    None,
    description="counts: on the inbox, add counts_by_assignee (each counted up to "
    "KNEO_SERV_MAX_LIST_COUNT, then listed in counts_capped). total is always there.",
)


@dataclass(frozen=True)
class PageParams:
    limit: int
    offset: int
    sort_by: str
    sort_order: Literal["asc", "desc"]
    cursor: str | None = None
    counts: bool = False
    #: the deepest ``offset`` this listing pages to (``KNEO_SERV_MAX_LIST_OFFSET``): what a
    #: client paging by offset stops at (it pages on by ``cursor``)
    window: int | None = None

    def metadata(self, count: int, total: int | None, *, capped: bool = False) -> dict[str, Any]:
        return {
            "count": count,
            "total": total,
            "total_capped": capped,
            "limit": self.limit,
            "offset": self.offset,
            "sort_by": self.sort_by,
            "sort_order": self.sort_order,
        }


def list_cap(request: Request, limit: int | None) -> int:
    """``limit`` (the cap when unset) under ``KNEO_SERV_MAX_LIST_ITEMS`` and 1000."""
    cap = min(request.app.state.settings.limits.max_list_items or HARD_LIMIT_CAP, HARD_LIMIT_CAP)
    return min(limit or cap, cap)


def keyset_params(request: Request, offset: int, include: str | None) -> bool:
    """Check a keyset listing's ``offset`` against its bound and parse ``include``;
    ``True`` when counts were asked for."""
    check_offset(offset)
    bound = request.app.state.settings.limits.max_list_offset
    if offset > bound:
        raise InvalidRequest(
            f"offset {offset} is above {bound}: page deeper with cursor "
            "(pass each page's next_cursor back as cursor)",
            code=ErrorCode.offset_too_deep,
            field="offset",
            max_offset=bound,
        )
    if include not in (None, "", "counts"):
        raise InvalidRequest(f"include must be 'counts', got {include!r}", field="include")
    return include == "counts"


def paging(
    sortable: Sequence[str], default_sort: str, default_order: Literal["asc", "desc"] = "desc"
) -> Callable[..., Awaitable[PageParams]]:
    """A dependency parsing ``limit, offset, sort_by, sort_order`` for one list route."""
    allowed = tuple(sortable)

    async def dependency(  # async: parsing needs no thread (a sync one costs a pool hop)
        request: Request,
        limit: int | None = Query(None, ge=1, description="Page size (capped)."),
        offset: int = OFFSET,
        sort_by: str = Query(default_sort, description=f"One of: {', '.join(allowed)}."),
        sort_order: Literal["asc", "desc"] = Query(default_order),
    ) -> PageParams:
        check_offset(offset)
        if sort_by not in allowed:
            raise InvalidRequest(
                f"sort_by must be one of {', '.join(allowed)}; got {sort_by!r}",
                field="sort_by",
                allowed=list(allowed),
            )
        return PageParams(list_cap(request, limit), offset, sort_by, sort_order)

    return dependency


def listing(
    sortable: Sequence[str], default_sort: str, default_order: Literal["asc", "desc"] = "desc"
) -> Callable[..., Awaitable[PageParams]]:
    """:func:`paging` plus ``cursor`` and ``include`` for a keyset listing (offset bounded)."""
    parse = paging(sortable, default_sort, default_order)

    async def dependency(
        request: Request,
        page: PageParams = Depends(parse),
        cursor: str | None = CURSOR,
        include: str | None = INCLUDE,
    ) -> PageParams:
        counts = keyset_params(request, page.offset, include)
        window = request.app.state.settings.limits.max_list_offset
        return replace(page, cursor=cursor or None, counts=counts, window=window)

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
