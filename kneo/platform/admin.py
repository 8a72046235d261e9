"""Administration: the service's surfaces over the store that are not a run's lifecycle.

The audit log, the service-managed environment policies, notification deliveries and the
idempotency record of a request. :class:`~kneo.platform.manager.PlatformManager` forwards
each method by name, so an edge (the HTTP routes) asks the platform and never the store:
the store stays a detail the platform may change behind one facade.

:func:`kneo.platform.notifications.list_view` is imported where deliveries are listed
(+9 ms: the receivers, the cards, the webhook clients), which every platform would pay.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Unpack

from kneo.platform.admission import POLICY_PREFIX, stored_policy
from kneo.platform.idempotency import idempotent
from kneo.platform.results import audit_listing, audit_to_dict
from kneo.redaction import redact
from kneo.spec.project_blocks import PolicyEnforcement
from kneo.store import AuditEvent, AuditQuery, NotificationQuery, Store

if TYPE_CHECKING:
    from kneo.store.row_values import AuditFields


@dataclass(kw_only=True, eq=False, repr=False)
class Administration:
    """Audit log, environment policies, notification deliveries and idempotency records."""

    store: Store

    # ------------------------------------------------------------------ audit

    def add_audit(self, event_type: str, **fields: Unpack[AuditFields]) -> AuditEvent:
        """Record one audit event (redacted on write) in a transaction of its own."""
        with self.store.transaction() as tx:
            return tx.add_audit(event_type, **fields)

    def list_audit_events(self, query: AuditQuery = AuditQuery()) -> dict[str, Any]:
        """One page of the audit log, newest first (``count=False`` leaves ``total`` out)."""
        page = self.store.audit.list_audit(query)
        return audit_listing(page)

    def get_audit_event(self, event_id: str) -> dict[str, Any]:
        """One audit event's view (``not_found`` when there is none)."""
        return audit_to_dict(self.store.audit.get_audit(event_id))

    # ------------------------------------------------------------------ environment policies

    def environment_policies(self) -> dict[str, Any]:
        """Every service-managed environment policy, by environment name."""
        stored = self.store.metadata.list_metadata(POLICY_PREFIX)
        return {key[len(POLICY_PREFIX) :]: value for key, value in stored.items()}

    def environment_policy(self, environment: str) -> Any:
        """The service-managed policy stored for ``environment`` as stored, or ``None``."""
        return self.store.metadata.get_metadata(POLICY_PREFIX + environment)

    def stored_policy(self, environment: str | None) -> PolicyEnforcement | None:
        """The service-managed policy for ``environment`` as a model, or ``None``."""
        return stored_policy(self.store, environment)

    def put_environment_policy(
        self, environment: str, policy: Mapping[str, Any], *, actor: str | None
    ) -> Any:
        """Replace ``environment``'s policy and record a ``policy.changed`` audit event (the
        previous and current policy, redacted, and the names of the fields that changed), in
        one transaction; returns the previous policy (``None`` when there was none)."""
        current = dict(policy)
        key = POLICY_PREFIX + environment
        with self.store.transaction() as tx:
            previous = self.store.metadata.get_metadata(key)
            tx.set_metadata(key, current)
            changed = sorted(
                name
                for name in set(current) | set(previous or {})
                if (previous or {}).get(name) != current.get(name)
            )
            tx.add_audit(
                "policy.changed",
                actor=actor,
                payload={
                    "surface": "environment",
                    "environment": environment,
                    "previous_policy": redact(previous),
                    "policy": redact(current),
                    "changed_fields": changed,
                },
            )
        return previous

    # ------------------------------------------------------------------ notifications

    def list_notifications(self, query: NotificationQuery = NotificationQuery()) -> dict[str, Any]:
        """A page of deliveries, newest first, with the count per status
        (:func:`kneo.platform.notifications.list_view`)."""
        from kneo.platform.notifications import list_view  # cost: module docstring

        return list_view(self.store, query)

    def retry_notifications(
        self, ids: Sequence[int] | None, *, status: str = "dead", actor: str | None
    ) -> int:
        """Make deliveries due now with a fresh attempt budget (``ids``, else every row in
        ``status``), audited as ``notifications.retried``; how many were made due."""
        retried = self.store.notifications.retry_notifications(ids, status=status)
        with self.store.transaction() as tx:
            tx.add_audit(
                "notifications.retried",
                actor=actor,
                payload={
                    "ids": list(ids) if ids is not None else None,
                    "status": None if ids else status,
                    "count": retried,
                },
            )
        return retried

    # ------------------------------------------------------------------ idempotency

    def idempotent(
        self,
        *,
        scope: str,
        key: str,
        digest: str,
        call: Callable[[], tuple[int, dict[str, Any]]],
    ) -> tuple[int, dict[str, Any], bool]:
        """``call`` at most once per (``scope``, ``key``); ``(status, body, replayed)``
        (:func:`kneo.platform.idempotency.idempotent`)."""
        return idempotent(self.store, scope=scope, key=key, digest=digest, call=call)
