"""The promotion gates: what a valid revision that is not active yet passes before it is.

In order (:data:`PROMOTION_GATES`), the first that stops it deciding: a blocked digest;
``refuse_downgrade`` and a digest first in force before the active one; ``require_evals``
and a bundle without a signed, passing result of each required suite; a freeze window
without an approved override (each a refusal, not a rejection: lifting the block or fixing
the spec lets it through); ``require_approved_in`` and the digest not (about to be) active
upstream; ``require_human_approval`` and fewer than ``min_approvals`` of its approvers
(M-of-N; one rejection stops it). Pure, as the planner.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from kneo.controller.model import (
    Action,
    ActionKind,
    Approvals,
    BundleKey,
    DesiredRevision,
    ObservedEntry,
    Problem,
    PromotionRules,
    RevisionRef,
)
from kneo.controller.plan_actions import (
    BLOCKED,
    DOWNGRADE,
    EVALS,
    FROZEN,
    PROMOTION_REJECTED,
    reject,
    short,
)
from kneo.people import counted
from kneo.policy.evals import judge_evals

# Problem codes of refusals.
DIGEST_BLOCKED = "digest_blocked"
DOWNGRADE_REFUSED = "downgrade_refused"
PROMOTION_FROZEN = "promotion_frozen"
EVALS_FAILED = "evals_failed"


@dataclass(frozen=True)
class GateInput:
    """What a promotion gate judges: a valid revision that is not yet active."""

    key: BundleKey
    revision: DesiredRevision
    entry: ObservedEntry
    rules: PromotionRules
    #: What will be active per key once this plan's earlier (upstream) actions apply.
    projected: Mapping[BundleKey, str | None]
    #: Blocked digests -> why.
    blocked: Mapping[str, str]
    #: The pending (approval) revision of this very digest, if any.
    pending: RevisionRef | None
    #: When freeze windows are judged (``None``: none applies).
    now: datetime | None = None
    #: Decisions on overriding a freeze for this digest.
    override: Approvals = field(default_factory=Approvals)


#: A gate returns the action that stops the promotion (refuse, reject, wait), or ``None``.
Gate = Callable[[GateInput], "Action | None"]


def _refuse(
    check: GateInput, reason: str, code: str, message: str, *, request_task: bool = False
) -> Action:
    name, environment = check.key
    entry = check.entry
    serving = (
        f"; revision {entry.active.number} ({short(entry.active.digest)}) keeps serving"
        if entry.active
        else ""
    )
    return Action(
        ActionKind.REFUSE,
        name,
        environment,
        reason,
        f"{message}{serving}",
        revision=check.revision,
        reasons=(Problem(code, message),),
        request_task=request_task,
    )


def _block_gate(check: GateInput) -> Action | None:
    """A blocked digest is never promoted, in any environment."""
    why = check.blocked.get(check.revision.digest or "")
    if why is None:
        return None
    return _refuse(check, BLOCKED, DIGEST_BLOCKED, f"{short(check.revision.digest)} is {why}")


def _downgrade_gate(check: GateInput) -> Action | None:
    """``refuse_downgrade``: a digest first in force before the active one stays out (a
    force-push to an older commit); a rollback is the way back."""
    entry, digest = check.entry, check.revision.digest or ""
    if not check.rules.refuse_downgrade or entry.active is None:
        return None
    was = entry.first_in_force.get(digest)
    now = entry.first_in_force.get(entry.active.digest, entry.active.number)
    if was is None or was >= now:
        return None
    return _refuse(
        check,
        DOWNGRADE,
        DOWNGRADE_REFUSED,
        f"{short(digest)} (first active as revision {was}) is older than the active "
        f"{short(entry.active.digest)} (revision {now}); {check.key[1]} refuses downgrades "
        "(use kneo registry rollback)",
    )


def _evals_gate(check: GateInput) -> Action | None:
    """``require_evals``: the bundle carries a signed result of every required suite, for this
    digest, at or above its minimum pass rate (docs/evals.md). A fixed spec is a new digest
    with a new result, so nothing is recorded as rejected."""
    if not check.rules.require_evals:
        return None
    verdicts = judge_evals(
        check.rules.require_evals, check.revision.evals, check.revision.digest or ""
    )
    failed = [v for v in verdicts if not v.passed]
    if not failed:
        return None
    return _refuse(check, EVALS, EVALS_FAILED, "; ".join(v.message() for v in failed))


def _freeze_gate(check: GateInput) -> Action | None:
    """Inside a freeze window, only an override the environment's approvers approved
    (``min_approvals`` of them, one rejection ends it) lets the promotion through; the
    refusal asks the applier to open the override task."""
    if check.now is None or not check.rules.freeze:
        return None
    windows = [w for w in check.rules.freeze if w.active_at(check.now)]
    if not windows:
        return None
    rules, override = check.rules, check.override
    frozen = f"{check.key[1]} is frozen: " + "; ".join(w.describe() for w in windows)
    if override.rejected_by:
        who = ", ".join(sorted(override.rejected_by))
        return _refuse(check, FROZEN, PROMOTION_FROZEN, f"{frozen}; override rejected by {who}")
    people = counted(override.approved_by, rules.approvers)  # approvers may name groups
    if len(people) >= rules.min_approvals:
        return None
    return _refuse(
        check,
        FROZEN,
        PROMOTION_FROZEN,
        f"{frozen}; override: {len(people)} of {rules.min_approvals} approvals"
        + (f" from {', '.join(rules.approvers)}" if rules.approvers else ""),
        request_task=True,
    )


def _upstream_gate(check: GateInput) -> Action | None:
    return _upstream_wait(check.key, check.revision, check.rules, check.projected)


def _approval_gate(check: GateInput) -> Action | None:
    if not check.rules.require_human_approval:
        return None
    return _approval(check.key, check.revision, check.entry, check.rules, check.pending)[0]


#: The checks a valid, changed revision passes before it is activated, in this order; the
#: first that stops it decides. Cheap, people-independent refusals come first, so no one is
#: asked to approve what would be refused anyway. Add a gate here (and its condition reason
#: in :data:`kneo.controller.conditions.REFUSAL_REASONS` when it refuses).
PROMOTION_GATES: tuple[Gate, ...] = (
    _block_gate,
    _downgrade_gate,
    _evals_gate,
    _freeze_gate,
    _upstream_gate,
    _approval_gate,
)


def approved_by(check: GateInput) -> tuple[str, ...]:
    """Who approved the promotion (the approval gate let it pass)."""
    if not check.rules.require_human_approval or check.pending is None:
        return ()
    return tuple(sorted(counted(check.entry.approvals.approved_by, check.rules.approvers)))


def _upstream_wait(
    key: BundleKey,
    revision: DesiredRevision,
    rules: PromotionRules | None,
    projected: Mapping[BundleKey, str | None],
) -> Action | None:
    """A wait while the digest is not (about to be) active in the upstream environment."""
    if rules is None or rules.require_approved_in is None:
        return None
    name, environment = key
    upstream = rules.require_approved_in
    upstream_digest = projected.get((name, upstream))
    if upstream_digest == revision.digest:
        return None
    return Action(
        ActionKind.WAIT_FOR_UPSTREAM,
        name,
        environment,
        "awaiting_upstream",
        f"{short(revision.digest)} must be active in {upstream} first "
        f"(active there: {short(upstream_digest)})",
        revision=revision,
        upstream=upstream,
    )


def _approval(
    key: BundleKey,
    revision: DesiredRevision,
    entry: ObservedEntry,
    rules: PromotionRules,
    pending: RevisionRef | None,
) -> tuple[Action | None, tuple[str, ...]]:
    """People's say on the promotion: ``(reject or wait, ())`` when it blocks, else
    ``(None, who approved)``. Only approvals of the pending revision count, and only from
    the listed approvers when there is a list."""
    name, environment = key
    approvals = entry.approvals if pending is not None else Approvals()
    if approvals.rejected_by:
        who = ", ".join(sorted(approvals.rejected_by))
        problem = Problem(PROMOTION_REJECTED, f"promotion to {environment} rejected by {who}")
        return reject(revision, entry, (problem,), pending), ()
    people = counted(approvals.approved_by, rules.approvers)  # approvers may name groups
    if len(people) >= rules.min_approvals:
        return None, tuple(sorted(people))
    wait = Action(
        ActionKind.WAIT_FOR_APPROVAL,
        name,
        environment,
        "awaiting_approval",
        f"Promote {name}@{revision.digest} to {environment}? "
        f"{len(people)} of {rules.min_approvals} approvals"
        + (f" from {', '.join(rules.approvers)}" if rules.approvers else ""),
        revision=revision,
        target=pending,
        approved_by=tuple(sorted(people)),
        request_task=not (pending is not None and entry.task_open),
    )
    return wait, ()
