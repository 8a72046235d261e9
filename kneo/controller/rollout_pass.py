"""Rollouts on the controller's side: begun with a promotion, moved on each pass, decided by
hand.

* :func:`begin_with_promotion`: when the controller promotes a revision in an environment
  whose policy has a ``rollout:``, in the promotion's own transaction, the new revision
  becomes the canary and the one serving (the previous active, or the stable revision of a
  rollout still moving or aborted) stays the stable one. A first promotion (nothing serving
  yet) takes every run at once.
* :func:`step_rollouts`: each pass, every rollout still moving takes one step of
  :func:`~kneo.controller.rollouts.advance`: its analysis from the rollout's runs
  (:meth:`~kneo.store.rollouts.RolloutFacet.figures`), held by a pin of the bundle in the
  environment or a freeze window of the policy it began under. Each change is one
  compare-and-set with its audit event (``rollout.step``, ``rollout.paused``,
  ``rollout.promoted``, ``rollout.aborted``: each a notification).
* :func:`decide`: ``promote`` (past the pause it stands at, or ``full``: to 100 % at once),
  ``abort`` (new runs go back to stable at once) and ``retry`` (an aborted rollout from its
  first step, the figures of its runs kept) by a person, under the environment's approvers.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from kneo.controller import rollout_history
from kneo.controller.rollouts import (
    FINAL,
    Figures,
    RolloutState,
    Verdict,
    advance,
    judge,
    start,
)
from kneo.errors import Conflict, ErrorCode, Forbidden
from kneo.ids import new_id
from kneo.people import caller_entry
from kneo.policy.environment import EnvironmentPolicy, FreezeWindow
from kneo.policy.rollout import RolloutPolicy
from kneo.store.queries import RolloutQuery

if TYPE_CHECKING:
    from kneo.store.api import Store
    from kneo.store.records import Pin
    from kneo.store.rollouts import RolloutRecord, SideFigures
    from kneo.store.transaction import Transaction


__all__ = [
    "begin_with_promotion",
    "decide",
    "state_of",
    "step_rollouts",
]

ACTOR = "controller"
Decision = Literal["promote", "abort", "retry"]


def begin_with_promotion(
    tx: Transaction,
    store: Store,
    policy: EnvironmentPolicy | None,
    *,
    name: str,
    environment: str,
    previous: int | None,
    revision: int,
    digest: str | None,
    commit: str | None,
    now: datetime,
) -> RolloutRecord | None:
    """Begin a rollout of ``revision`` (just activated) when ``policy`` has one; ``None``
    when the promotion takes every run at once."""
    rollout = policy.rollout if policy is not None else None
    if rollout is None or previous is None or previous == revision:
        return None
    newest = RolloutQuery(bundle=name, environment=environment, limit=1)
    current = next(iter(store.rollouts.list_rollouts(newest).items), None)
    stable = previous
    if current is not None and current.status in ("progressing", "paused", "aborted"):
        stable = current.stable_revision
    if stable == revision:  # back to the stable revision itself: nothing to roll out
        return None
    state = start(rollout, now)
    record = tx.begin_rollout(
        new_id("ro"),
        bundle_name=name,
        environment=environment,
        stable_revision=stable,
        canary_revision=revision,
        canary_digest=digest,
        commit=commit,
        weight=state.weight,
        step=state.step,
        policy={
            "rollout": rollout.model_dump(mode="json", by_alias=False),
            "freeze": [w.model_dump(mode="json", by_alias=True) for w in policy.promotion.freeze]
            if policy is not None
            else [],
            "approvers": list(policy.promotion.approvers) if policy is not None else [],
        },
    )
    _audit(tx, "rollout.started", record, steps=len(rollout.steps))
    return record


def state_of(record: RolloutRecord) -> RolloutState:
    status = record.status if record.status in ("progressing", "paused") else "aborted"
    if record.status == "promoted":
        status = "promoted"
    return RolloutState(
        step=record.step,
        weight=record.weight,
        status=status,  # type: ignore[arg-type]
        step_started_at=record.step_started_at,
        reason=record.reason,
    )


def policy_of(record: RolloutRecord) -> RolloutPolicy:
    return RolloutPolicy.model_validate(record.policy["rollout"])


def figures_of(store: Store, record: RolloutRecord) -> dict[str, Figures]:
    """Each side's figures of ``record``'s runs, as the analysis reads them."""
    sides = store.rollouts.figures(record.rollout_id)
    return {side: analysed(f) for side, f in sides.items()}


def analysed(side: SideFigures) -> Figures:
    """The analysis' :class:`Figures` of a side's stored counters."""
    return Figures(**vars(side))


def _held(pin: Pin | None, record: RolloutRecord, now: datetime) -> str | None:
    if pin is not None:
        return f"pinned to revision {pin.revision}"
    for window in record.policy.get("freeze") or []:
        parsed = FreezeWindow.model_validate(window)
        if parsed.active_at(now):
            return f"frozen: {parsed.describe()}"
    return None


def step_rollouts(store: Store, now: datetime) -> list[dict[str, Any]]:
    """One step of every rollout still moving; what changed (one entry per rollout). A
    rollout that does not move may still add a point to its figures' history
    (:mod:`kneo.controller.rollout_history`)."""
    changed = []
    active = store.rollouts.active()
    pins = store.registry.holds(names={r.bundle_name for r in active}).pins if active else {}
    for record in active:
        policy = policy_of(record)
        state = state_of(record)
        verdict: Verdict | None = None
        figures = figures_of(store, record)
        if state.step < len(policy.steps):
            rule = policy.steps[state.step].analysis
            if rule is not None:
                verdict = judge(rule, figures["canary"], figures["stable"])
        moved = advance(
            policy,
            state,
            now,
            verdict=verdict,
            held=_held(pins.get((record.bundle_name, record.environment)), record, now),
        )
        if moved == state:
            _sample(store, record, figures, verdict, now)
            continue
        changed.append(_write(store, record, moved, verdict, figures, actor=ACTOR, now=now))
    return changed


def _sample(
    store: Store,
    record: RolloutRecord,
    figures: Mapping[str, Figures],
    verdict: Verdict | None,
    now: datetime,
) -> None:
    """A point of the figures' history for a rollout that did not move, when one is due,
    with the figures and the analysis' verdict now (no audit event: nothing changed but the
    figures)."""
    if not rollout_history.due(record.figures, now):
        return
    shown = {side: f.to_dict() for side, f in figures.items()}
    kept = {**dict(record.figures or {}), "sides": shown}
    if verdict is not None:
        kept["verdict"] = verdict.to_dict()
    sampled = rollout_history.with_point(kept, shown, weight=record.weight, now=now)
    try:
        with store.transaction() as tx:
            tx.move_rollout(record, figures=sampled)
    except Conflict:  # moved by someone else meanwhile: the next pass samples it
        return


def _write(
    store: Store,
    record: RolloutRecord,
    moved: RolloutState,
    verdict: Verdict | None,
    figures: Mapping[str, Figures] | None,
    *,
    actor: str,
    now: datetime,
    decided: str | None = None,
) -> dict[str, Any]:
    shown = {side: f.to_dict() for side, f in figures.items()} if figures is not None else None
    changes: dict[str, Any] = {
        "status": moved.status,
        "step": moved.step,
        "weight": moved.weight,
        "reason": moved.reason,
        "step_started_at": moved.step_started_at,
    }
    if shown is not None:
        last = dict(record.figures or {})
        kept = {**last, "sides": shown, "verdict": verdict.to_dict() if verdict else None}
        if verdict is None and last.get("verdict"):
            kept["verdict"] = last["verdict"]  # the last analysis' verdict until the next
        if rollout_history.due(record.figures, now):
            kept = rollout_history.with_point(kept, shown, weight=moved.weight, now=now)
        changes["figures"] = kept
    if moved.status in FINAL:
        changes["finished_at"] = now
    event = {
        "aborted": "rollout.aborted",
        "promoted": "rollout.promoted",
        "paused": "rollout.paused",
    }.get(moved.status, "rollout.step")
    if decided == "retry":
        event = "rollout.retried"
    with store.transaction() as tx:
        updated = tx.move_rollout(record, **changes)
        _audit(
            tx,
            event,
            updated,
            actor=actor,
            reason=moved.reason,
            decided=decided,
            figures=shown,
            verdict=verdict.to_dict() if verdict else None,
        )
    return {"rollout": updated.rollout_id, "event": event, **updated.to_dict()}


def _audit(
    tx: Transaction, event: str, record: RolloutRecord, *, actor: str = ACTOR,
    **payload: object,
) -> None:  # fmt: skip
    tx.add_audit(
        event,
        actor=actor,
        payload={
            "rollout_id": record.rollout_id,
            "bundle": record.bundle_name,
            "environment": record.environment,
            "stable_revision": record.stable_revision,
            "canary_revision": record.canary_revision,
            "status": record.status,
            "step": record.step,
            "weight": record.weight,
            **{k: v for k, v in payload.items() if v is not None},
        },
    )


def _may_decide(record: RolloutRecord, actor: str, groups: frozenset[str]) -> None:
    """Only the environment's approvers (and a pause step's own) decide by hand; anyone
    when the policy names none. An entry names the caller as a promotion's approvers do
    (:func:`kneo.people.caller_entry`: a key by its name, a person by their proven user
    claim or ``group:G``); ``groups``: more groups the caller is known to be in.
    ``403 not_an_approver`` otherwise."""
    allowed = set(record.policy.get("approvers") or [])
    policy = policy_of(record)
    if record.step < len(policy.steps):
        pause = policy.steps[record.step].pause
        if pause is not None:
            allowed |= set(pause.approvers)
    named = {*groups, *(f"group:{g}" for g in groups)}
    if not allowed or named & allowed:
        return
    if caller_entry(actor, sorted(allowed)) is None:  # a key by name, a person as proven
        raise Forbidden(
            f"{actor} is not an approver of {record.environment} "
            f"({', '.join(sorted(allowed))} are)",
            code=ErrorCode.not_an_approver,
        )


def decide(
    store: Store,
    rollout_id: str,
    decision: Decision,
    *,
    actor: str,
    groups: frozenset[str] = frozenset(),
    full: bool = False,
    reason: str | None = None,
    now: datetime,
) -> dict[str, Any]:
    """A person's ``promote``, ``abort`` or ``retry`` of a rollout (module docstring)."""
    record = store.rollouts.get_rollout(rollout_id)
    _may_decide(record, actor, groups)
    policy, state = policy_of(record), state_of(record)
    if decision == "retry":
        if record.status != "aborted":
            raise Conflict(f"rollout {rollout_id} is {record.status}, not aborted",
                           code=ErrorCode.illegal_transition)  # fmt: skip
        moved = start(policy, now)
    elif record.status not in ("progressing", "paused"):
        raise Conflict(f"rollout {rollout_id} is {record.status}",
                       code=ErrorCode.illegal_transition)  # fmt: skip
    elif decision == "abort":
        moved = RolloutState(state.step, state.weight, "aborted", now,
                             reason or f"aborted by {actor}")  # fmt: skip
    elif full:
        moved = RolloutState(len(policy.steps), 100, "promoted", now, f"promoted by {actor}")
    else:  # past the one step it stands at: a pause further on waits for its own approvers
        at = policy.steps[state.step] if state.step < len(policy.steps) else None
        if at is not None and at.pause is not None:
            moved = advance(policy, state, now, verdict=None, approved=True)
        else:
            moved = advance(policy, state, now, verdict=Verdict("pass"))
    return _write(store, record, moved, None, None, actor=actor, now=now, decided=decision)
