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
    "promotion.override_requested": "warning",
    "rollback.awaiting_approval": "warning",
    "promotion.evals_failed": "error",
    "bundle.promoted": "info",
    "bundle.rejected": "error",
    "bundle.drift_reverted": "warning",
    "controller.reconcile_failed": "error",
    "policy.held": "warning",
    "policy.below_floor": "error",
    "policy.applied": "info",
    "policy.changed": "info",
    "run.failed": "error",
    "rollout.started": "info",
    "rollout.step": "info",
    "rollout.paused": "info",
    "rollout.promoted": "info",
    "rollout.aborted": "error",
    "rollout.retried": "info",
}

#: The events asking approvers to decide (a promotion, a freeze override, a rollback, a held
#: policy change that needs approvals): each approver's message carries their decision link
#: or buttons, like a human request's.
APPROVAL_EVENTS: tuple[str, ...] = (
    "promotion.awaiting_approval",
    "promotion.override_requested",
    "rollback.awaiting_approval",
    "policy.held",
)

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
    "promotion.override_requested": "promotion.override_requested",
    "bundle.rollback_requested": "rollback.awaiting_approval",
    "policy.held": "policy.held",
    "policy.below_floor": "policy.below_floor",
    "policy.applied": "policy.applied",
    "policy.changed": "policy.changed",
    "promotion.evals_failed": "promotion.evals_failed",
    "bundle.promoted": "bundle.promoted",
    "rollout.started": "rollout.started",
    "rollout.step": "rollout.step",
    "rollout.paused": "rollout.paused",
    "rollout.promoted": "rollout.promoted",
    "rollout.aborted": "rollout.aborted",
    "rollout.retried": "rollout.retried",
    "bundle.rejected": "bundle.rejected",
    "bundle.drift_reverted": "bundle.drift_reverted",
    "controller.reconcile_failed": "controller.reconcile_failed",
    "run.failed": "run.failed",
}

__all__ = ["APPROVAL_EVENTS", "NOTIFICATION_EVENTS", "NOTIFIED_AUDITS", "SEVERITIES"]
