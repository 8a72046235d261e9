"""The store's contract for what is delivered later (:mod:`kneo.store.outbox`): the
notification outbox and A2A push configs with their pushes. Part of
:mod:`kneo.store.contracts`, which re-exports them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from kneo.store.outbox.a2a_push import DuePush, PushConfig
    from kneo.store.outbox.notifications import (
        DeliveryOutcome,
        NotificationEvent,
        NotificationRecord,
    )
    from kneo.store.records import Page


class NotificationOutbox(Protocol):
    """The notification outbox: events written with the change that caused them, routed to
    receivers, claimed under a lease and finished by the dispatchers."""

    def add_notification_event(
        self,
        event_id: str,
        event_type: str,
        *,
        run_id: str | None = None,
        continuation_id: str | None = None,
        payload: dict[str, Any] | None = None,
        actor: str | None = None,
    ) -> bool: ...
    def route_notifications(
        self, receivers_for: Callable[[NotificationEvent], Sequence[str]], limit: int = 100
    ) -> int: ...
    def claim_notifications(
        self,
        owner: str,
        lease_seconds: float,
        limit: int = 10,
        *,
        receivers: Sequence[str] | None = None,
    ) -> list[NotificationRecord]: ...
    def finish_notifications(self, owner: str, outcomes: Sequence[DeliveryOutcome]) -> int: ...
    def list_notifications(
        self,
        *,
        status: str | None = None,
        receiver: str | None = None,
        event_type: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> Page[NotificationRecord]: ...
    def notification_counts(self) -> dict[tuple[str, str], int]: ...
    def unrouted_notification_events(self) -> int: ...
    def retry_notifications(
        self, ids: Sequence[int] | None = None, *, status: str = "dead"
    ) -> int: ...


class A2aPushConfigs(Protocol):
    """A2A push notification configs, each its owner's, and the outbox rows of their pushes
    (:mod:`kneo.store.outbox.a2a_push`)."""

    def put_push_config(
        self,
        *,
        push_id: str,
        run_id: str,
        config_id: str,
        owner: str,
        origin: str,
        auth_scheme: str | None,
        sealed: str,
        sees_requests: bool,
        limit: int,
    ) -> PushConfig: ...
    def push_configs(self, run_id: str, owner: str) -> list[PushConfig]: ...
    def push_config(self, push_id: str) -> PushConfig | None: ...
    def delete_push_config(self, run_id: str, owner: str, config_id: str) -> bool: ...
    def due_pushes(self, limit: int = 100) -> list[DuePush]: ...
    def record_push(
        self, config: PushConfig, *, status: str, done: bool, payload: dict[str, Any]
    ) -> bool: ...
