"""The store's contract between processes (:mod:`kneo.store.coordination`): run leases and
the run queue, named locks, idempotency keys and accepted callbacks, each committing on its
own, and what a project's limits are checked against. Part of :mod:`kneo.store.contracts`,
which re-exports them.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from kneo.store.coordination.limits import DayUsage
    from kneo.store.records import (
        IdempotencyOutcome,
        LockRecord,
        QueueRecord,
        RunLease,
        StrandedRun,
    )


class RunLeases(Protocol):
    """Per-run leases: which process is executing a run, so a run whose process stopped
    renewing is found (``stranded_runs``) and taken over."""

    def acquire_run_lease(self, run_id: str, owner: str, ttl_seconds: float) -> bool: ...
    def renew_run_leases(self, run_ids: Sequence[str], owner: str, ttl_seconds: float) -> int: ...
    def stranded_runs(self, idle_seconds: float, limit: int = 100) -> list[StrandedRun]: ...
    def release_run_lease(self, run_id: str, owner: str) -> bool: ...
    def run_lease(self, run_id: str) -> RunLease | None: ...


class RunQueue(RunLeases, Protocol):
    """The run queue and the per-run leases: at-least-once delivery to workers through leases that expire, so a run
    whose worker died is claimed again. A run is queued in a transaction, with the change
    that queues it (:class:`RunTransaction`'s ``enqueue``)."""

    def claim(
        self, owner: str, lease_seconds: float, *, excluded_projects: Collection[int] = ()
    ) -> QueueRecord | None: ...
    def renew_lease(self, queue_id: int, owner: str, lease_seconds: float) -> bool: ...
    def complete(self, queue_id: int, owner: str) -> bool: ...
    def fail(self, queue_id: int, owner: str, error: Mapping[str, Any]) -> bool: ...
    def release(self, queue_id: int, owner: str, *, delay_seconds: float = 0.0) -> bool: ...
    def queue_records_for_run(self, run_id: str) -> list[QueueRecord]: ...
    def queue_stats(self) -> dict[str, int]: ...


class NamedLocks(Protocol):
    """Named locks with an owner and a time to live (the controller's leadership,
    maintenance jobs): at most one live holder per name."""

    def acquire_lock(self, name: str, owner: str, ttl_seconds: float) -> bool: ...
    def renew_lock(self, name: str, owner: str, ttl_seconds: float) -> bool: ...
    def release_lock(self, name: str, owner: str) -> bool: ...
    def get_lock(self, name: str) -> LockRecord | None: ...
    def lock(self, name: str, owner: str, ttl_seconds: float) -> AbstractContextManager[None]: ...


class CallbackReplays(Protocol):
    """Signed callbacks already accepted (a Slack click), so a replay is refused by every
    process sharing the database, until the callback's window has passed."""

    def first_callback(self, key: str, expires_at: datetime) -> bool: ...


class IdempotencyKeys(CallbackReplays, Protocol):
    """Idempotency keys for the service's POSTs: the first request with a key runs, a repeat
    with the same body gets the first's response, a different body a conflict; and the
    signed callbacks already accepted."""

    def begin_idempotent(
        self, scope: str, key: str, request_hash: str, *, stale_after_seconds: float = 300.0
    ) -> IdempotencyOutcome: ...
    def finish_idempotent(self, scope: str, key: str, status_code: int, response: Any) -> None: ...
    def release_idempotent(self, scope: str, key: str) -> None: ...


class ProjectLimitCounts(Protocol):
    """What a project's ``limits:`` are checked against: its runs executing and queued,
    counted up to the limit, and its usage per UTC day (``project_usage``)."""

    def count_runs(self, status: str, cap: int, *, executing_only: bool = False) -> int: ...
    def executing_runs(self, project_ids: Sequence[int]) -> dict[int, int]: ...
    def day_usage(self, day: str) -> DayUsage: ...
    def add_usage(self, day: str, *, model_calls: int, tokens: int, cost: int = 0) -> None: ...
    def raise_day_limit(self, day: str, counter: str, limit: int) -> DayUsage: ...
