"""The planner's shared vocabulary: the reason each action states, and the rejection.

Action reasons are stable strings (the CLI, audit events and status conditions carry them);
:func:`reject` is the action both a bundle that failed verification and a person's
rejection of its promotion make (:mod:`kneo.controller.promotion_gates`).
"""

from __future__ import annotations

from kneo.controller.model import (
    Action,
    ActionKind,
    DesiredRevision,
    ObservedEntry,
    Problem,
    RevisionRef,
)
from kneo.errors import ErrorCode

# Action reasons (stable strings; the CLI and audit events carry them).
UP_TO_DATE = "up_to_date"
SUSPENDED = "suspended"
PRUNE_DISABLED = "prune_disabled"
EMPTY_DESIRED_STATE = ErrorCode.empty_desired_state
ALREADY_REJECTED = "already_rejected"
PROMOTION_REJECTED = ErrorCode.promotion_rejected
PINNED = ErrorCode.pinned
BLOCKED = "blocked"
DOWNGRADE = "downgrade"
FROZEN = "frozen"
EVALS = "evals_failed"


def short(digest: str | None) -> str:
    """``sha256:0123456789ab`` for messages; full digests live in the data."""
    return "none" if digest is None else digest[:19]


def reject(
    revision: DesiredRevision,
    entry: ObservedEntry,
    problems: tuple[Problem, ...],
    pending: RevisionRef | None = None,
) -> Action:
    """A rejection, or a ``noop`` when this exact content was already rejected."""
    serving = (
        f"; revision {entry.active.number} ({short(entry.active.digest)}) keeps serving"
        if entry.active
        else ""
    )
    if revision.fingerprint in entry.rejected_fingerprints:
        return Action(
            ActionKind.NOOP,
            revision.name,
            revision.environment,
            ALREADY_REJECTED,
            f"{revision.path} was already rejected{serving}",
            revision=revision,
            target=entry.active,
            reasons=revision.problems,
        )
    summary = "; ".join(p.message for p in problems)
    return Action(
        ActionKind.REJECT,
        revision.name,
        revision.environment,
        problems[0].code if problems else "rejected",
        f"{summary}{serving}",
        revision=revision,
        target=pending,
        reasons=problems,
    )
