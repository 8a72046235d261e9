"""``plan(desired, observed) -> actions`` and the status conditions that follow. Pure.

Rules, in the order they are applied to each (bundle, environment):

1. Suspended: leave it alone (drift is reported, not reverted).
1b. Pinned (``kneo registry pin|rollback``): serve the pinned revision (put it back if the
   registry was changed outside) and promote nothing until unpinned.
2. No file in Git: prune the active revision, unless ``prune`` is off or the whole commit
   is empty and ``allow_empty`` is off (a commit deleting everything is far more often an
   accident than an intent), or the environment's policy in force gates removals
   (:mod:`kneo.controller.prune_gate`: held for its approvers, or refused).
3. A bundle that failed verification, or a digest a person rejected: reject it once (per
   fingerprint); the active revision keeps serving.
4. The :data:`PROMOTION_GATES`, in order: a blocked digest, with ``refuse_downgrade`` a
   digest first in force before the active one, with ``require_evals`` a bundle without a
   signed, passing result of each required suite, and inside a freeze window a promotion
   without an approved override are refused (not rejected: lifting the block or fixing the
   spec lets it through); then the upstream and approval gates below.
   ``require_approved_in``: the same digest must be active upstream, judged on the state
   *after* this plan's upstream actions (environments are planned upstream first), and the
   applier re-checks it inside the activating transaction.
   ``require_human_approval``: ``min_approvals`` distinct members of ``approvers`` approved
   (M-of-N); a single rejection stops the promotion.
5. Otherwise activate (under a ``rollout:`` policy, with the steps it will roll out by:
   :mod:`kneo.controller.rollout_plan`). A registry changed outside the controller (drift)
   is put back to what the controller applied, or to what Git now asks for.

No I/O, no clock (``PlanOptions.now`` is the moment freezes are judged at): the same inputs
always give the same actions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from kneo.controller import prune_gate
from kneo.controller.model import (
    Action,
    ActionKind,
    Approvals,
    BundleKey,
    ConditionType,
    ConditionValue,
    DesiredEnvironment,
    DesiredRevision,
    DesiredState,
    ObservedEntry,
    ObservedState,
    PinRef,
    PlanOptions,
    Problem,
    PromotionRules,
    RevisionRef,
)
from kneo.controller.rollout_plan import with_rollout
from kneo.errors import ErrorCode
from kneo.people import counted
from kneo.policy.evals import judge_evals

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

# Problem codes of refusals.
DIGEST_BLOCKED = "digest_blocked"
DOWNGRADE_REFUSED = "downgrade_refused"
PROMOTION_FROZEN = "promotion_frozen"
EVALS_FAILED = "evals_failed"

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


def short(digest: str | None) -> str:
    """``sha256:0123456789ab`` for messages; full digests live in the data."""
    return "none" if digest is None else digest[:19]


def environment_order(environments: Mapping[str, DesiredEnvironment]) -> dict[str, int]:
    """Depth of each environment in its ``require_approved_in`` chain (upstream first).

    Cycles and unknown upstreams get depth 0; the loader reports them as problems.
    """
    depth: dict[str, int] = {}

    def walk(name: str, seen: frozenset[str]) -> int:
        if name in depth:
            return depth[name]
        env = environments.get(name)
        upstream = env.promotion.require_approved_in if env is not None else None
        if upstream is None or upstream in seen or upstream not in environments:
            result = 0
        else:
            result = walk(upstream, seen | {name}) + 1
        depth[name] = result
        return result

    for name in environments:
        walk(name, frozenset())
    return depth


def plan(
    desired: DesiredState, observed: ObservedState, options: PlanOptions | None = None
) -> list[Action]:
    """Every action needed to make the registry match ``desired``, upstream environments first.

    Keys with nothing to say (no file, nothing active, nothing pending) produce no action;
    every other key produces at least one (a ``noop`` states why nothing is written).
    """
    options = options or PlanOptions()
    keys: set[BundleKey] = set(desired.revisions)
    for key, entry in observed.entries.items():
        if desired.scope is not None and key[0] not in desired.scope:
            continue  # an incremental plan speaks for its scope only
        if entry.active is not None or entry.pending is not None or entry.drifted:
            keys.add(key)
    depth = environment_order(desired.environments)
    projected: dict[BundleKey, str | None] = {
        key: entry.active.digest if entry.active else None
        for key, entry in observed.entries.items()
    }
    empty_guard = not desired.has_bundles and not options.allow_empty
    actions: list[Action] = []
    for key in sorted(keys, key=lambda k: (depth.get(k[1], 0), k[1], k[0])):
        entry = observed.get(key)
        revision = desired.revisions.get(key)
        env = desired.environments.get(key[1])
        planned = _plan_key(
            key,
            revision,
            entry,
            env,
            projected,
            options,
            empty_guard,
            observed,
        )
        for action in planned:
            _project(projected, action)
        actions.extend(planned)
    return actions


def _project(projected: dict[BundleKey, str | None], action: Action) -> None:
    """What will be active for the action's key once it is applied."""
    if action.kind is ActionKind.ACTIVATE:
        projected[action.key] = action.digest
    elif action.kind is ActionKind.PRUNE:
        projected[action.key] = None
    elif action.kind is ActionKind.DRIFT_REVERT:
        projected[action.key] = action.target.digest if action.target else None


def _plan_key(
    key: BundleKey,
    revision: DesiredRevision | None,
    entry: ObservedEntry,
    env: DesiredEnvironment | None,
    projected: Mapping[BundleKey, str | None],
    options: PlanOptions,
    empty_guard: bool,
    observed: ObservedState,
) -> list[Action]:
    """One key's actions, deciding in order: suspended, pinned, removed from Git, invalid,
    already active, rejected before, then the :data:`PROMOTION_GATES`; otherwise activate."""
    if entry.suspended:
        return [_suspended(key, revision, entry)]
    if entry.pin is not None:
        return _pinned(key, revision, entry, entry.pin)
    if revision is None:
        return _plan_removed(key, entry, options, empty_guard, env, observed.prunes)
    if not revision.ok:
        return _with_drift_fix(key, entry, _reject(revision, entry, revision.problems))
    if entry.active is not None and entry.active.digest == revision.digest:
        name, environment = key
        return [
            Action(
                ActionKind.NOOP,
                name,
                environment,
                UP_TO_DATE,
                f"revision {entry.active.number} ({short(revision.digest)}) is active",
                revision=revision,
                target=entry.active,
            )
        ]
    if revision.fingerprint in entry.rejected_fingerprints:
        return _with_drift_fix(key, entry, _reject(revision, entry, ()))
    check = GateInput(
        key,
        revision,
        entry,
        env.promotion if env is not None else PromotionRules(),
        projected,
        observed.blocked,
        entry.pending if _pending_matches(entry, revision) else None,
        options.now,
        observed.overrides.get((*key, revision.digest or ""), Approvals()),
    )
    for gate in PROMOTION_GATES:
        stopped = gate(check)
        if stopped is not None:
            return _with_drift_fix(key, entry, stopped)
    activate = _activate(key, revision, entry, check.pending, _approved_by(check))
    return [with_rollout(activate, env, entry)]  # the steps, when it rolls out


# --------------------------------------------------------------------------- gates


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
#: in :data:`REFUSAL_REASONS` when it refuses).
PROMOTION_GATES: tuple[Gate, ...] = (
    _block_gate,
    _downgrade_gate,
    _evals_gate,
    _freeze_gate,
    _upstream_gate,
    _approval_gate,
)


def _approved_by(check: GateInput) -> tuple[str, ...]:
    """Who approved the promotion (the approval gate let it pass)."""
    if not check.rules.require_human_approval or check.pending is None:
        return ()
    return tuple(sorted(counted(check.entry.approvals.approved_by, check.rules.approvers)))


def _pinned(
    key: BundleKey, revision: DesiredRevision | None, entry: ObservedEntry, pin: PinRef
) -> list[Action]:
    """A pinned key serves its pinned revision whatever Git asks for, until unpinned; a
    registry changed outside is put back to the pin."""
    name, environment = key
    held = (
        f"pinned to revision {pin.revision} ({short(pin.digest)})"
        + (f" by {pin.pinned_by}" if pin.pinned_by else "")
        + (f": {pin.reason}" if pin.reason else "")
    )
    if entry.active is None or entry.active.number != pin.revision:
        target = RevisionRef(pin.revision, pin.digest, "inactive")
        return [
            Action(
                ActionKind.DRIFT_REVERT,
                name,
                environment,
                "drift_reverted",
                f"{held}; re-activating it",
                target=target,
                drift=True,
            )
        ]
    if revision is not None and revision.ok and revision.digest == pin.digest:
        return [
            Action(
                ActionKind.NOOP,
                name,
                environment,
                UP_TO_DATE,
                f"revision {pin.revision} ({short(pin.digest)}) is active ({held})",
                revision=revision,
                target=entry.active,
            )
        ]
    asks = (
        f"Git asks for {short(revision.digest)}"
        if revision is not None and revision.digest
        else "Git has no valid bundle file"
    )
    message = f"{held}; {asks}, not promoted until `kneo registry unpin`"
    return [
        Action(
            ActionKind.REFUSE,
            name,
            environment,
            PINNED,
            message,
            revision=revision,
            target=entry.active,
            reasons=(Problem(PINNED, message),),
        )
    ]


def _suspended(key: BundleKey, revision: DesiredRevision | None, entry: ObservedEntry) -> Action:
    """A suspended key changes nothing, drift included."""
    name, environment = key
    note = (
        "; the registry was changed outside the controller (drift not reverted)"
        if entry.drifted
        else ""
    )
    return Action(
        ActionKind.NOOP,
        name,
        environment,
        SUSPENDED,
        f"{name} is suspended in {environment}; nothing is changed{note}",
        revision=revision,
        target=entry.active,
        drift=entry.drifted,
    )


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
        return _reject(revision, entry, (problem,), pending), ()
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


def _activate(
    key: BundleKey,
    revision: DesiredRevision,
    entry: ObservedEntry,
    pending: RevisionRef | None,
    approved_by: tuple[str, ...],
) -> Action:
    """Activate the revision; drift back to this very digest is a revert instead."""
    name, environment = key
    applied = entry.applied
    if (
        entry.drifted
        and applied is not None
        and applied.status != "pruned"
        and applied.digest == revision.digest
    ):
        return _drift_revert(key, entry, applied)
    return Action(
        ActionKind.ACTIVATE,
        name,
        environment,
        "promoted",
        f"activate {short(revision.digest)} from {revision.path} at {revision.commit[:12]}"
        + (f", approved by {', '.join(approved_by)}" if approved_by else "")
        + (f" (replacing revision {entry.active.number})" if entry.active else ""),
        revision=revision,
        target=pending,
        approved_by=approved_by,
        drift=entry.drifted,
    )


def _pending_matches(entry: ObservedEntry, revision: DesiredRevision) -> bool:
    return entry.pending is not None and entry.pending.digest == revision.digest


def _plan_removed(
    key: BundleKey,
    entry: ObservedEntry,
    options: PlanOptions,
    empty_guard: bool,
    env: DesiredEnvironment | None,
    prunes: Mapping[tuple[str, str, str], Approvals],
) -> list[Action]:
    name, environment = key
    leftover = entry.applied if entry.drifted and entry.active is None else None
    if entry.active is None and entry.pending is None and leftover is None:
        return []
    if not options.prune:
        return [
            Action(
                ActionKind.NOOP,
                name,
                environment,
                PRUNE_DISABLED,
                f"no bundle file for {name} in {environment}; pruning is off, "
                f"revision {entry.active.number if entry.active else '-'} stays",
                target=entry.active,
            )
        ]
    if empty_guard:
        return [
            Action(
                ActionKind.NOOP,
                name,
                environment,
                EMPTY_DESIRED_STATE,
                "the commit holds no bundles at all; refusing to prune everything "
                "(set allow_empty: true in the controller config to allow it)",
                target=entry.active,
            )
        ]
    gated = prune_gate.judge_prune(key, entry, env, prunes)
    if gated is not None:
        return [gated]
    return [
        Action(
            ActionKind.PRUNE,
            name,
            environment,
            "pruned",
            f"no bundle file for {name} in {environment}; deactivating "
            + (
                f"revision {entry.active.number}"
                if entry.active
                else "the pending promotion"
                if entry.pending
                else "the revision that was deactivated by hand"
            ),
            target=entry.active or leftover,
            drift=entry.drifted,
        )
    ]


def _reject(
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


def _drift_fix(key: BundleKey, entry: ObservedEntry) -> Action | None:
    if not entry.drifted:
        return None
    applied = entry.applied
    return _drift_revert(key, entry, applied if applied and applied.status != "pruned" else None)


def _drift_revert(key: BundleKey, entry: ObservedEntry, target: RevisionRef | None) -> Action:
    name, environment = key
    found = (
        f"revision {entry.active.number} ({short(entry.active.digest)}) was activated outside "
        "the controller"
        if entry.active
        else "the active revision was deactivated outside the controller"
    )
    fix = (
        f"re-activating revision {target.number} ({short(target.digest)})"
        if target
        else "deactivating it"
    )
    return Action(
        ActionKind.DRIFT_REVERT,
        name,
        environment,
        "drift_reverted",
        f"{found}; {fix}",
        target=target,
        drift=True,
    )


def _with_drift_fix(key: BundleKey, entry: ObservedEntry, action: Action) -> list[Action]:
    fix = _drift_fix(key, entry)
    return [action] if fix is None else [action, fix]


# --------------------------------------------------------------------------- conditions


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
