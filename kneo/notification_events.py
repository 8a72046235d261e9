"""The notification events Kneo emits: each type's severity, and the audit events that cause
them. A foundation module (no I/O): the store writes the outbox from it, the project config
validates receiver filters against it, the dispatcher formats messages with it.
"""

from __future__ import annotations

#: Severity order for receiver filters (a receiver gets its ``severity`` and above).
SEVERITIES: tuple[str, ...] = ("info", "warning", "error")

#: Every notification event type -> its severity.
NOTIFICATION_EVENTS: dict[str, str] = {
    "human.requested": "info",
    "human.expiring": "warning",
    "human.escalated": "warning",
    "human.expired": "error",
    "human.decision": "info",
    "promotion.awaiting_approval": "info",
    "promotion.evals_failed": "error",
    "bundle.promoted": "info",
    "bundle.rejected": "error",
    "bundle.drift_reverted": "warning",
    "controller.reconcile_failed": "error",
    "run.failed": "error",
}

#: Audit event type -> the notification event it causes, written in the same transaction
#: (``human.expiring`` has no audit event: the dispatcher's sweep writes it).
NOTIFIED_AUDITS: dict[str, str] = {
    "human.requested": "human.requested",
    "human.escalated": "human.escalated",
    "human.expired": "human.expired",
    "human.decision": "human.decision",
    "promotion.requested": "promotion.awaiting_approval",
    # a removal held for the environment's approvers is decided like a promotion
    "prune.requested": "promotion.awaiting_approval",
    "promotion.evals_failed": "promotion.evals_failed",
    "bundle.promoted": "bundle.promoted",
    "bundle.rejected": "bundle.rejected",
    "bundle.drift_reverted": "bundle.drift_reverted",
    "controller.reconcile_failed": "controller.reconcile_failed",
    "run.failed": "run.failed",
}

__all__ = ["NOTIFICATION_EVENTS", "NOTIFIED_AUDITS", "SEVERITIES"]
