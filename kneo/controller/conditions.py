"""The status conditions of one (bundle, environment) once its planned actions apply. Pure.

``Verified`` (its file's verdict), ``Promoted`` (what the plan did with it, or why not) and
``Ready`` (whether what serves is what Git asks for). The applier persists them (the store
moves ``last_transition_time`` only when status, reason or message change) and overrides
them when applying fails.
"""

from __future__ import annotations

from collections.abc import Iterable

from kneo.controller import prune_gate
from kneo.controller.model import (
    Action,
    ActionKind,
    ConditionType,
    ConditionValue,
    DesiredRevision,
    ObservedEntry,
    Problem,
    RevisionRef,
)
from kneo.controller.plan_actions import (
    ALREADY_REJECTED,
    BLOCKED,
    DOWNGRADE,
    EVALS,
    FROZEN,
    PINNED,
    SUSPENDED,
    UP_TO_DATE,
    short,
)
from kneo.errors import ErrorCode

# Condition reasons.
R_VERIFIED = "Verified"
R_NOT_IN_GIT = "NotInGit"
R_PROMOTED = "Promoted"
R_AWAITING_APPROVAL = "AwaitingApproval"
R_AWAITING_UPSTREAM = "AwaitingUpstream"
R_REJECTED = "Rejected"
R_PRUNED = "Pruned"
R_PRUNE_SKIPPED = "PruneSkipped"
R_SUSPENDED = "Suspended"
R_READY = "Ready"
R_SERVING_PREVIOUS = "ServingPrevious"
R_NO_ACTIVE = "NoActiveRevision"
R_DRIFT = "DriftDetected"

#: Condition reason (``Promoted=False``) of each refusal, by action reason.
REFUSAL_REASONS = {
    PINNED: "Pinned",
    BLOCKED: "Blocked",
    DOWNGRADE: "DowngradeRefused",
    FROZEN: "Frozen",
    EVALS: "EvalsFailed",
    **prune_gate.CONDITION_REASONS,
}


def conditions_for(
    revision: DesiredRevision | None,
    entry: ObservedEntry,
    actions: Iterable[Action],
) -> list[ConditionValue]:
    """Verified, Promoted and Ready for one key once ``actions`` are applied.

    Pure: the applier persists them (the store moves ``last_transition_time`` only when
    status, reason or message change) and overrides them when applying fails.
    """
    acts = list(actions)
    main = next((a for a in acts if a.kind is not ActionKind.DRIFT_REVERT), None)
    drift = next((a for a in acts if a.kind is ActionKind.DRIFT_REVERT), None)
    serving: RevisionRef | str | None = entry.active
    if main is not None and main.kind is ActionKind.ACTIVATE:
        serving = main.digest or ""
    elif main is not None and main.kind is ActionKind.PRUNE:
        serving = None
    if drift is not None:
        serving = drift.target
    return [
        _verified(revision),
        _promoted(revision, main, drift),
        _ready(revision, main, serving),
    ]


def _verified(revision: DesiredRevision | None) -> ConditionValue:
    t = ConditionType.VERIFIED
    if revision is None:
        return ConditionValue(t, "Unknown", R_NOT_IN_GIT, "no bundle file at the commit")
    if revision.ok:
        signers = ", ".join(revision.signer_key_ids) or "-"
        return ConditionValue(
            t, "True", R_VERIFIED, f"{short(revision.digest)} signed by {signers}"
        )
    problem = (
        revision.problems[0] if revision.problems else Problem(ErrorCode.invalid, ErrorCode.invalid)
    )
    return ConditionValue(t, "False", problem.code, "; ".join(p.message for p in revision.problems))


def _promoted(
    revision: DesiredRevision | None, main: Action | None, drift: Action | None
) -> ConditionValue:
    t = ConditionType.PROMOTED
    if main is None:
        if drift is not None:
            return ConditionValue(t, "False", R_DRIFT, drift.message)
        return ConditionValue(t, "Unknown", R_NOT_IN_GIT, "nothing to promote")
    kind, message = main.kind, main.message
    if kind is ActionKind.ACTIVATE or (kind is ActionKind.NOOP and main.reason == UP_TO_DATE):
        return ConditionValue(t, "True", R_PROMOTED, f"{short(main.digest)} is active")
    if kind is ActionKind.WAIT_FOR_APPROVAL:
        return ConditionValue(t, "False", R_AWAITING_APPROVAL, message)
    if kind is ActionKind.REFUSE:
        return ConditionValue(t, "False", REFUSAL_REASONS.get(main.reason, "Refused"), message)
    if kind is ActionKind.WAIT_FOR_UPSTREAM:
        return ConditionValue(t, "False", R_AWAITING_UPSTREAM, message)
    if kind is ActionKind.PRUNE:
        return ConditionValue(t, "False", R_PRUNED, message)
    if kind is ActionKind.REJECT or main.reason == ALREADY_REJECTED:
        return ConditionValue(t, "False", R_REJECTED, message)
    if main.reason == SUSPENDED:
        return ConditionValue(t, "Unknown", R_SUSPENDED, message)
    return ConditionValue(t, "False", R_PRUNE_SKIPPED, message)


def _ready(
    revision: DesiredRevision | None, main: Action | None, serving: RevisionRef | str | None
) -> ConditionValue:
    t = ConditionType.READY
    if main is not None and main.reason == SUSPENDED:
        return ConditionValue(t, "Unknown", R_SUSPENDED, main.message)
    digest = serving.digest if isinstance(serving, RevisionRef) else serving
    if not digest:
        return ConditionValue(t, "False", R_NO_ACTIVE, "no active revision")
    if revision is not None and revision.ok and digest == revision.digest:
        return ConditionValue(t, "True", R_READY, f"serving {short(digest)} as in Git")
    return ConditionValue(
        t,
        "False",
        R_SERVING_PREVIOUS,
        f"serving {short(digest)}; Git asks for {short(revision.digest if revision else None)}",
    )
