"""What a listing is asked for, one frozen value per listing (issue 74).

A listing's keywords (its filters, paging and order) were written out four times: in the
store's method and its protocol, in the platform's facade, in the service route and in the
CLI's local client, each restating the others' names and defaults. A query value is written
once: the route (or the CLI) builds it, the facade passes it on (refining what is the
platform's to refine, such as a status's aliases), and the store reads it. It checks its own
paging and order when built, so a value that exists is one the store can answer, and the
``400 invalid_request`` naming the field is the same whichever layer built it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from kneo.errors import InvalidRequest
from kneo.lifecycle import TaskStatus
from kneo.store.base import check_order, check_page, one_of_cursor_offset
from kneo.store.tasks.search import query_terms

#: The orders of a runs listing, each an index's (then ``created_at``, ties by ``run_id``).
RUN_SORTS = ("created_at", "updated_at", "status")
#: The orders of a human task inbox: by age, or by deadline (the undated after either).
TASK_SORTS = ("oldest", "newest", "expiring", "expiring_last")


@dataclass(frozen=True, kw_only=True)
class RunQuery:
    """A runs listing (``GET /v1/runs``): its status (one, or any of several), what it keeps
    besides (exact values, a window on ``created_at``, both bounds exclusive, and a search of
    words), its order and its page. ``count=False`` leaves the page's ``total`` out."""

    status: str | tuple[str, ...] | None = None
    session_id: str | None = None
    workflow_name: str | None = None
    workflow_kind: str | None = None
    has_error: bool | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    q: str | None = None
    limit: int = 50
    offset: int = 0
    sort_by: str = "created_at"
    sort_order: str = "desc"
    cursor: str | None = None
    count: bool = True

    def __post_init__(self) -> None:
        check_page(self.limit, self.offset)
        check_order(self.sort_order)
        if self.sort_by not in RUN_SORTS:
            raise InvalidRequest(
                f"sort_by must be created_at, updated_at or status, got {self.sort_by!r}",
                field="sort_by",
            )
        one_of_cursor_offset(self.cursor, self.offset)

    def filtered(self) -> bool:
        """Whether it keeps runs by anything besides their status (then a page counts the
        runs it keeps, not the project's counters)."""
        return any(getattr(self, name) is not None for name in _RUN_FILTERS)


#: The fields of a :class:`RunQuery` that filter beyond the status.
_RUN_FILTERS = (
    "session_id", "workflow_name", "workflow_kind", "has_error", "created_after",
    "created_before", "q",
)  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class TaskQuery:
    """A human task inbox (continuations, pending by default): ``assignee``/``kind`` keep
    those with a *pending* request of that assignee (or any of several: a person, their
    groups) or kind (``promotion``: promotions, whose assignee is an approver they name);
    ``workflow_name``/``environment`` the run's labels (a promotion's bundle and
    environment); ``older_than``/``expires_before`` bound ``created_at``/``expires_at``;
    ``q`` keeps the tasks holding every word of it (:func:`kneo.store.tasks.search.query_terms`:
    a blank one searches nothing, one of no word is refused naming ``q``). Oldest or newest
    first, or by deadline."""

    status: str | None = TaskStatus.PENDING
    run_id: str | None = None
    workflow_kind: str | None = None
    assignee: str | tuple[str, ...] | None = None
    kind: str | None = None
    escalated: bool | None = None
    older_than: datetime | None = None
    expires_before: datetime | None = None
    workflow_name: str | None = None
    environment: str | None = None
    sort: str = "oldest"
    limit: int = 50
    offset: int = 0
    cursor: str | None = None
    count: bool = True
    q: str | None = None

    def __post_init__(self) -> None:
        check_page(self.limit, self.offset)
        self.search()  # (a q of no word, or of too many, is refused here)
        if self.sort not in TASK_SORTS:
            raise InvalidRequest(
                f"sort must be oldest, newest, expiring or expiring_last, got {self.sort!r}",
                field="sort",
            )
        one_of_cursor_offset(self.cursor, self.offset)

    def search(self) -> list[str]:
        """The words of ``q``, none when it is unset or blank."""
        return query_terms(self.q) if self.q and self.q.strip() else []


@dataclass(frozen=True, kw_only=True)
class AuditQuery:
    """An audit log listing, newest first: of one event type, run or continuation (each
    optional); ``count=False`` leaves the page's ``total`` out."""

    event_type: str | None = None
    run_id: str | None = None
    continuation_id: str | None = None
    limit: int = 50
    offset: int = 0
    cursor: str | None = None
    count: bool = True

    def __post_init__(self) -> None:
        check_page(self.limit, self.offset)
        one_of_cursor_offset(self.cursor, self.offset)


@dataclass(frozen=True, kw_only=True)
class RegistryQuery:
    """A listing of the registry's revisions across bundles, in the key's order (bundle,
    environment, revision): of one environment and one status (each ``None``: all; active
    ones by default), a page of ``limit`` (every row when ``None``) after ``cursor``;
    ``count`` adds the page's ``total``."""

    environment: str | None = None
    status: str | None = "active"
    limit: int | None = None
    cursor: str | None = None
    count: bool = False

    def __post_init__(self) -> None:
        if self.limit is not None:
            check_page(self.limit, 0)


#: A rollout's statuses: moving (``progressing``, ``paused``), then where it ended.
ROLLOUT_STATUSES: tuple[str, ...] = ("progressing", "paused", "promoted", "aborted", "superseded")


@dataclass(frozen=True, kw_only=True)
class RolloutQuery:
    """A listing of a project's rollouts, newest first: of one bundle, environment and
    status (each optional), a page of ``limit`` after ``cursor``; ``count`` adds the page's
    ``total`` (up to the count cap)."""

    bundle: str | None = None
    environment: str | None = None
    status: str | None = None
    limit: int = 50
    cursor: str | None = None
    count: bool = False

    def __post_init__(self) -> None:
        check_page(self.limit, 0)
        if self.status is not None and self.status not in ROLLOUT_STATUSES:
            raise InvalidRequest(
                f"status must be one of {', '.join(ROLLOUT_STATUSES)}; got {self.status!r}",
                field="status",
                allowed=list(ROLLOUT_STATUSES),
            )


#: A delivery's statuses, in the order it moves through them.
NOTIFICATION_STATUSES: tuple[str, ...] = ("pending", "sending", "sent", "dead")


@dataclass(frozen=True, kw_only=True)
class NotificationQuery:
    """A listing of notification deliveries, newest first: of one status, receiver or
    event type (each optional)."""

    status: str | None = None
    receiver: str | None = None
    event_type: str | None = None
    limit: int = 100
    offset: int = 0

    def __post_init__(self) -> None:
        check_page(self.limit, self.offset)
        if self.status is not None and self.status not in NOTIFICATION_STATUSES:
            raise InvalidRequest(
                f"status must be one of {', '.join(NOTIFICATION_STATUSES)}, got {self.status!r}",
                field="status",
            )


__all__ = [
    "NOTIFICATION_STATUSES",
    "ROLLOUT_STATUSES",
    "RUN_SORTS",
    "TASK_SORTS",
    "AuditQuery",
    "NotificationQuery",
    "RegistryQuery",
    "RolloutQuery",
    "RunQuery",
    "TaskQuery",
]
