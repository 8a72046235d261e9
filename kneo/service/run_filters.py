"""The query of ``GET /v1/runs`` beyond paging: its status, sessions, workflows, errors,
creation time and words, parsed into a :class:`~kneo.store.RunQuery` (the route adds its
page).

A time without an offset is UTC (as every time Kneo answers is); a malformed one is ``422
validation_error`` naming the parameter, never a filter silently dropped.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import Query

from kneo.store import RunQuery


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


async def run_filter(  # async: parsing needs no thread
    status: str | None = Query(
        None,
        description="A run status, or several separated by commas (any of them); also the "
        "original's `completed`, `blocked`.",
    ),
    session_id: str | None = Query(
        None, max_length=128, description="Runs of this session (in `POST /v1/runs`)."
    ),
    workflow_name: str | None = Query(None, max_length=255, description="Exact workflow name."),
    workflow_kind: str | None = Query(
        None, max_length=64, description="Exact workflow kind (sequential, graph, ...)."
    ),
    has_error: bool | None = Query(
        None, description="true: runs that recorded an error; false: runs without one."
    ),
    created_after: datetime | None = Query(
        None, description="ISO 8601; runs created after it (UTC when no offset is given)."
    ),
    created_before: datetime | None = Query(
        None, description="ISO 8601; runs created before it (UTC when no offset is given)."
    ),
    q: str | None = Query(
        None,
        max_length=400,
        description="Words (whole, case-insensitive, every one) of the run's output or "
        "error message.",
    ),
) -> RunQuery:
    """The filters a runs listing was asked for (its status refined by the platform, its
    page the route's)."""
    return RunQuery(
        status=status,
        session_id=session_id,
        workflow_name=workflow_name,
        workflow_kind=workflow_kind,
        has_error=has_error,
        created_after=_utc(created_after),
        created_before=_utc(created_before),
        q=q,
    )


__all__ = ["run_filter"]
