"""``plan(desired, observed) -> actions``: what makes the registry match Git. Pure.

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
4. The promotion gates (:data:`~kneo.controller.promotion_gates.PROMOTION_GATES`), in
   order: a blocked digest, with ``refuse_downgrade`` a digest first in force before the
   active one, with ``require_evals`` a bundle without a signed, passing result of each
   required suite, and inside a freeze window a promotion without an approved override are
   refused (not rejected: lifting the block or fixing the spec lets it through); then the
   upstream and approval gates below.
   ``require_approved_in``: the same digest must be active upstream, judged on the state
   *after* this plan's upstream actions (environments are planned upstream first), and the
   applier re-checks it inside the activating transaction.
   ``require_human_approval``: ``min_approvals`` distinct members of ``approvers`` approved
   (M-of-N); a single rejection stops the promotion.
5. Otherwise activate (under a ``rollout:`` policy, with the steps it will roll out by:
   :mod:`kneo.controller.rollout_plan`). A registry changed outside the controller (drift)
   is put back to what the controller applied, or to what Git now asks for.

No I/O, no clock (``PlanOptions.now`` is the moment freezes are judged at): the same inputs
always give the same actions. The status conditions that follow from them are
:mod:`kneo.controller.conditions`'s; the reasons actions state,
:mod:`kneo.controller.plan_actions`'.
"""

from __future__ import annotations

from collections.abc import Mapping

from kneo.controller import prune_gate
from kneo.controller.model import (
    Action,
    ActionKind,
    Approvals,
    BundleKey,
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
from kneo.controller.plan_actions import (
    EMPTY_DESIRED_STATE,
    PINNED,
    PRUNE_DISABLED,
    SUSPENDED,
    UP_TO_DATE,
    reject,
    short,
)
from kneo.controller.promotion_gates import PROMOTION_GATES, GateInput, approved_by
from kneo.controller.rollout_plan import with_rollout


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
        return _with_drift_fix(key, entry, reject(revision, entry, revision.problems))
    if entry.active is not None and entry.active.digest == revision.digest:
        active = f"revision {entry.active.number} ({short(revision.digest)}) is active"
        return _up_to_date(key, revision, entry, active)
    if revision.fingerprint in entry.rejected_fingerprints:
        return _with_drift_fix(key, entry, reject(revision, entry, ()))
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
    activate = _activate(key, revision, entry, check.pending, approved_by(check))
    return [with_rollout(activate, env, entry)]  # the steps, when it rolls out


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
        active = f"revision {pin.revision} ({short(pin.digest)}) is active ({held})"
        return _up_to_date(key, revision, entry, active)
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


def _up_to_date(
    key: BundleKey, revision: DesiredRevision, entry: ObservedEntry, message: str
) -> list[Action]:
    """Nothing to do: Git asks for the revision that is active (pinned or not), and
    ``message`` says which."""
    name, environment = key
    return [
        Action(
            ActionKind.NOOP,
            name,
            environment,
            UP_TO_DATE,
            message,
            revision=revision,
            target=entry.active,
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
