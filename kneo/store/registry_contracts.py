"""The store's contract for the GitOps registry (:mod:`kneo.store.registry`) and the
requests to its controller (:mod:`kneo.store.coordination.controller_requests`): what the
controller, the service and the platform read, and how a controller is asked to reconcile.
The registry's writes are a transaction's
(:class:`~kneo.store.transaction_contracts.RegistryTransaction`). Part of
:mod:`kneo.store.contracts`, which re-exports them.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from kneo.store.transaction_contracts import ApprovalReads

if TYPE_CHECKING:
    from kneo.store.coordination.controller_requests import ControllerWakeups
    from kneo.store.records import (
        BlockedDigest,
        BundleRevision,
        Condition,
        ControllerRequest,
        ControllerRequestCounts,
        ControllerStatus,
        Page,
        Pin,
        PromotionApproval,
        RevisionHead,
        Suspension,
    )


class RegistryReads(ApprovalReads, Protocol):
    """The GitOps registry as the controller, the service and the platform read it:
    revisions, conditions, suspensions, pins, blocked digests, promotion approvals and the
    change feed of an incremental reconcile."""

    def get_revision(self, bundle_name: str, environment: str, revision: int) -> BundleRevision: ...
    def get_active(self, bundle_name: str, environment: str) -> BundleRevision | None: ...
    def list_revisions(self, bundle_name: str, environment: str) -> list[BundleRevision]: ...
    def list_registry(
        self,
        environment: str | None = None,
        *,
        status: str | None = "active",
        limit: int | None = None,
        cursor: str | None = None,
        count: bool = False,
    ) -> Page[BundleRevision]: ...
    def list_revision_heads(
        self, environment: str | None = None, *, names: Collection[str] | None = None
    ) -> list[RevisionHead]: ...
    def registry_changes_since(self, seq: int | None) -> tuple[int, set[str]]: ...
    def pending_promotion_names(self) -> set[str]: ...
    def find_revision(
        self, bundle_name: str, environment: str, digest: str
    ) -> BundleRevision | None: ...
    def list_conditions(
        self, bundle_name: str | None = None, environment: str | None = None
    ) -> list[Condition]: ...
    def list_condition_heads(
        self, *, names: Collection[str] | None = None
    ) -> list[tuple[str, str, str, str, str, str]]: ...
    def is_suspended(self, bundle_name: str, environment: str) -> bool: ...
    def list_suspensions(
        self, environment: str | None = None, *, names: Collection[str] | None = None
    ) -> list[Suspension]: ...
    def get_pin(self, bundle_name: str, environment: str) -> Pin | None: ...
    def list_pins(
        self, environment: str | None = None, *, names: Collection[str] | None = None
    ) -> list[Pin]: ...
    def list_blocked_digests(self) -> list[BlockedDigest]: ...
    def get_controller_status(self, name: str = "default") -> ControllerStatus: ...
    def list_subject_approvals(
        self, prefix: str, names: Collection[str] | None = None
    ) -> list[PromotionApproval]: ...


class ControllerRequests(Protocol):
    """Requests to a named controller (reconcile now, rescan) and its wake-ups: the service
    queues, the controller takes and finishes them, a waiter polls one."""

    def queue_controller_request(
        self,
        name: str,
        kind: str,
        *,
        actor: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> ControllerRequest: ...
    def take_controller_requests(
        self, name: str, owner: str, *, plans: bool = False
    ) -> list[int]: ...
    def finish_controller_requests(
        self, name: str, ids: Sequence[int], result: dict[str, Any]
    ) -> None: ...
    def get_controller_request(self, request_id: int) -> ControllerRequest: ...
    def has_queued_controller_requests(self, name: str) -> bool: ...
    def controller_request_counts(self, name: str) -> ControllerRequestCounts: ...
    def notify_controller(self, name: str) -> None: ...
    def controller_wakeups(
        self, name: str, wake: Callable[[], None], *, poll_seconds: float
    ) -> ControllerWakeups: ...
    def queued_controller_sources(self) -> set[tuple[int, str]]: ...
    def all_controller_wakeups(
        self, wake: Callable[[int | None, str | None], None], *, poll_seconds: float
    ) -> ControllerWakeups: ...
