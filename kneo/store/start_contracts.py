"""What the store answers for runs that start by themselves: schedules' ticks and
triggers' events (:mod:`kneo.store.schedules`, :mod:`kneo.store.triggers`). Part of the
store's contracts (:mod:`kneo.store.contracts`), kept apart by subject."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from kneo.store.api import Store
    from kneo.store.schedules import ScheduleKey, ScheduleState, Tick
    from kneo.store.triggers import TriggerKey


class ScheduleStates(Protocol):
    """Schedules' state and ticks (``schedule_states``, ``schedule_ticks``): a tick claimed
    once across replicas by its row (:mod:`kneo.store.schedules`)."""

    def active_heads(self) -> list[tuple[str, str, int, str]]: ...
    def states(self) -> dict[ScheduleKey, ScheduleState]: ...
    def advance(self, key: ScheduleKey, tick: datetime) -> None: ...
    def set_paused(self, key: ScheduleKey, paused: bool, actor: str | None) -> None: ...
    def claim_tick(self, key: ScheduleKey, tick: datetime, status: str = "claimed") -> bool: ...
    def record_tick(
        self,
        key: ScheduleKey,
        tick: datetime,
        status: str,
        *,
        run_id: str | None = None,
        detail: str | None = None,
        expected: str | None = None,
    ) -> bool: ...
    def live_run(self, key: ScheduleKey) -> str | None: ...
    def waiting_keys(self) -> set[ScheduleKey]: ...
    def oldest_waiting(self, key: ScheduleKey) -> datetime | None: ...
    def ticks(self, key: ScheduleKey, limit: int = 20) -> list[Tick]: ...
    def stale_claims(self, before: datetime) -> list[tuple[ScheduleKey, datetime]]: ...


class TriggerEvents(Protocol):
    """Events triggers received (``trigger_events``): one run per event id
    (:mod:`kneo.store.triggers`)."""

    def claim_event(self, key: TriggerKey, event_key: str) -> bool: ...
    def record_event(
        self,
        key: TriggerKey,
        event_key: str,
        status: str,
        *,
        run_id: str | None = None,
        detail: str | None = None,
    ) -> None: ...
    def event_outcome(self, key: TriggerKey, event_key: str) -> dict[str, Any] | None: ...


class HasSchedules(Protocol):
    """``store.schedules``: :class:`ScheduleStates`."""

    @property
    def schedules(self) -> ScheduleStates: ...


class HasTriggers(Protocol):
    """``store.triggers``: :class:`TriggerEvents`."""

    @property
    def triggers(self) -> TriggerEvents: ...


def _facet_conformance(store: Store) -> list[object]:
    """Never called: mypy checks the store's facets against these protocols."""
    c0: ScheduleStates = store.schedules
    c1: TriggerEvents = store.triggers
    return [c0, c1]


__all__ = ["HasSchedules", "HasTriggers", "ScheduleStates", "TriggerEvents"]
