"""Apply planned actions to the registry, each bundle revision all or nothing.

The plan was made from :mod:`kneo.controller.observe`'s :class:`Snapshot`, whose stored
conditions say which ones changed. :class:`Applier` writes each key's actions, its changed
conditions and its audit events together: up to :data:`BATCH_KEYS` keys share a
transaction (a cold pass of 10,000 bundles would otherwise spend a third of its writing in
commits). When a shared transaction fails, none of it lands and each of its keys is written
again in a transaction of its own, so only the key at fault fails: nothing of it lands, the
failure is recorded as a ``Ready=False ApplyFailed`` condition and a ``bundle.apply_failed``
audit event, and the next key is applied. A rejected or failing revision therefore never
replaces the active one.

Audit events: ``bundle.promoted``, ``bundle.rejected``, ``bundle.pruned``,
``bundle.drift_reverted``, ``bundle.refused`` (when a gate's refusal changes the
conditions; ``promotion.evals_failed`` when it is the eval gate's, ``bundle.prune_held``,
``bundle.prune_refused`` or ``bundle.prune_rejected`` when a removal's),
``promotion.requested``, ``prune.requested`` (decisions are audited where they are
recorded, see :mod:`kneo.controller.promotion`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kneo.clock import Clock, SystemClock
from kneo.controller import promotion, prune_gate, rollout_pass
from kneo.controller.conditions import conditions_for
from kneo.controller.model import (
    ACTOR,
    Action,
    ActionKind,
    BundleKey,
    ConditionValue,
    DesiredRevision,
    DesiredState,
    ObservedEntry,
)
from kneo.controller.observe import Snapshot
from kneo.controller.plan_actions import EVALS
from kneo.errors import ErrorCode, KneoError
from kneo.logs import get_logger
from kneo.policy.evals import eval_summary
from kneo.projects import DEFAULT_PROJECT

if TYPE_CHECKING:
    from kneo.store import BundleRevision, ControllerStatus
    from kneo.store.api import Store
    from kneo.store.transaction import Transaction

log = get_logger("kneo.controller")

#: Keys written per shared transaction: enough that commits stop mattering, few enough that
#: SQLite's write lock is held for tens of milliseconds, not seconds.
BATCH_KEYS = 100


@dataclass
class _KeyWrite:
    """One key's planned actions and changed conditions, waiting for its transaction;
    ``done`` receives its outcomes."""

    key: BundleKey
    actions: list[Action]
    entry: ObservedEntry
    conditions: list[ConditionValue]
    done: list[Outcome]


@dataclass(frozen=True)
class Outcome:
    """What applying one action did (``error`` when its transaction was rolled back)."""

    action: Action
    applied: bool
    revision: int | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = self.action.to_dict()
        if self.revision is not None:
            data["revision"] = self.revision
        if self.error:
            data["error"] = self.error
        data["applied"] = self.applied
        return data


class Applier:
    """Writes a plan to the store. ``gate`` opens and closes human promotion tasks."""

    def __init__(
        self,
        store: Store,
        *,
        gate: promotion.PromotionGate,
        clock: Clock | None = None,
        upstream_check: bool = True,
    ) -> None:
        self.store = store
        self.gate = gate
        self.clock = clock or SystemClock()
        self.upstream_check = upstream_check
        self._open_tasks: frozenset[str] | None = None
        #: task ids are unique across the database: a removal's names its project
        self.project: str = getattr(store, "project", DEFAULT_PROJECT)

    def apply(
        self,
        desired: DesiredState,
        snapshot: Snapshot,
        actions: Iterable[Action],
        *,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[Outcome]:
        """Write the keys' actions in plan order, :data:`BATCH_KEYS` keys per transaction;
        ``progress(done, total)`` after each transaction (between them, so what it raises
        stops the pass with everything before committed)."""
        self._open_tasks = snapshot.open_tasks
        by_key: dict[BundleKey, list[Action]] = {}
        for action in actions:
            by_key.setdefault(action.key, []).append(action)
        outcomes: list[list[Outcome]] = []
        batch: list[_KeyWrite] = []
        total = len(by_key)
        for index, (key, acts) in enumerate(by_key.items()):
            revision = desired.revisions.get(key)
            entry = snapshot.observed.get(key)
            conditions = [
                c
                for c in conditions_for(revision, entry, acts)
                if snapshot.conditions.get((key[0], key[1], c.type.value))
                != (c.status, c.reason, c.message)
            ]
            if not conditions and not any(a.writes for a in acts):
                outcomes.append([Outcome(a, False) for a in acts])
                continue
            batch.append(_KeyWrite(key, acts, entry, conditions, []))
            outcomes.append(batch[-1].done)
            if len(batch) >= BATCH_KEYS:
                self._write_batch(batch, desired)
                batch = []
                if progress is not None:
                    progress(index + 1, total)
        if batch:
            self._write_batch(batch, desired)
            if progress is not None:
                progress(total, total)
        return [o for done in outcomes for o in done]

    # ---------------------------------------------------------------- keys

    def _write_batch(self, batch: list[_KeyWrite], desired: DesiredState) -> None:
        """``batch``'s keys in one transaction; if it fails, each in one of its own (so only
        the key at fault fails, with its own error and audit event)."""
        if len(batch) > 1:
            try:
                with self.store.transaction(marks_registry_changes=False) as tx:
                    done = [self._write_key(tx, w, desired) for w in batch]
            except Exception as exc:  # found again, and reported, key by key below
                log.debug("a batch of %d keys failed (%s); one at a time", len(batch), exc)
            else:
                for w, outcomes in zip(batch, done, strict=True):
                    w.done.extend(outcomes)
                return
        for w in batch:
            w.done.extend(self._apply_key(w, desired))

    def _apply_key(self, write: _KeyWrite, desired: DesiredState) -> list[Outcome]:
        """One key in a transaction of its own; a failure is recorded (:meth:`_failed`)."""
        name, env = write.key
        try:
            with self.store.transaction(marks_registry_changes=False) as tx:
                return self._write_key(tx, write, desired)
        except KneoError as exc:
            return self._failed(write.key, write.actions, exc.code, exc.message)
        except Exception as exc:  # a database error must not stop the other keys
            log.exception("applying %s/%s failed", name, env)
            return self._failed(
                write.key, write.actions, "apply_failed", f"{type(exc).__name__}: {exc}"
            )

    def _write_key(self, tx: Transaction, write: _KeyWrite, desired: DesiredState) -> list[Outcome]:
        """One key's actions, audit events and changed conditions inside ``tx``."""
        name, env = write.key
        results: list[Outcome] = []
        for action in write.actions:
            results.append(self._apply_one(tx, action, write.entry, desired))
            if action.kind is ActionKind.REFUSE and write.conditions:  # once per change
                _audit(
                    tx,
                    _refusal_event(action.reason),
                    action,
                    digest=action.digest,
                    reason=action.reason,
                    reasons=[p.to_dict() for p in action.reasons],
                )
        if write.conditions:
            tx.set_conditions(
                name,
                env,
                [(c.type.value, c.status, c.reason, c.message) for c in write.conditions],
            )
        return results

    def _failed(
        self, key: BundleKey, actions: list[Action], code: str, message: str
    ) -> list[Outcome]:
        name, env = key
        text = f"{code}: {message}"
        try:
            with self.store.transaction() as tx:
                tx.set_conditions(name, env, [("Ready", "False", "ApplyFailed", text[:2000])])
                tx.add_audit(
                    "bundle.apply_failed",
                    actor=ACTOR,
                    payload={
                        "bundle": name,
                        "environment": env,
                        "error": text[:2000],
                        "actions": [a.kind.value for a in actions],
                    },
                )
        except Exception:  # the database itself is gone; the controller status says so
            log.exception("recording the failure of %s/%s failed", name, env)
        return [Outcome(a, False, error=text) for a in actions]

    def _apply_one(
        self, tx: Transaction, action: Action, entry: ObservedEntry, desired: DesiredState
    ) -> Outcome:
        kind = action.kind
        if kind is ActionKind.ACTIVATE:
            return self._activate(tx, action, entry, desired)
        if kind is ActionKind.REJECT:
            return self._reject(tx, action)
        if kind is ActionKind.PRUNE:
            return self._prune(tx, action, entry)
        if kind is ActionKind.DRIFT_REVERT:
            return self._drift_revert(tx, action, entry)
        if kind is ActionKind.WAIT_FOR_APPROVAL and action.request_task:
            return self._request_approval(tx, action, entry, desired)
        if kind is ActionKind.REFUSE and action.reason == prune_gate.PRUNE_HELD:
            return self._request_prune(tx, action, desired)
        if kind is ActionKind.REFUSE and action.request_task:
            return self._request_override(tx, action, desired)
        return Outcome(action, False)

    def _request_override(self, tx: Transaction, action: Action, desired: DesiredState) -> Outcome:
        """A freeze refusal: open the override task for the environment's approvers, once."""
        rev = _desired(action)
        name, env = action.key
        rules = desired.environments[env].promotion
        cid = self.gate.open_override(
            tx,
            name=name,
            environment=env,
            digest=rev.digest or "",
            approvers=rules.approvers,
            min_approvals=rules.min_approvals,
            frozen=action.reasons[0].message if action.reasons else action.message,
            now=self.clock.now(),
        )
        if cid is None:
            return Outcome(action, False)
        _audit(
            tx,
            "promotion.override_requested",
            action,
            continuation_id=cid,
            digest=rev.digest,
            approvers=list(rules.approvers),
            min_approvals=rules.min_approvals,
            message=action.message,
        )
        return Outcome(action, True)

    def _request_prune(self, tx: Transaction, action: Action, desired: DesiredState) -> Outcome:
        """A removal held for the environment's approvers: open their task, once."""
        target = action.target
        assert target is not None  # the prune gate holds a serving revision only
        name, env = action.key
        rules = desired.environments[env].promotion
        subject = prune_gate.prune_subject(target)
        cid = prune_gate.prune_task_id(self.project, name, env, subject)
        opened = self.gate.open_prune(
            tx,
            cid,
            name=name,
            environment=env,
            revision=target.number,
            digest=target.digest,
            subject=subject,
            question=prune_gate.prune_question(name, env, target),
            approvers=rules.approvers,
            min_approvals=rules.min_approvals,
            now=self.clock.now(),
        )
        if not opened:
            return Outcome(action, False)
        _audit(
            tx,
            "prune.requested",
            action,
            continuation_id=cid,
            revision=target.number,
            digest=target.digest,
            approvers=list(rules.approvers),
            min_approvals=rules.min_approvals,
            prompt=prune_gate.prune_question(name, env, target),
        )
        return Outcome(action, True, target.number)

    def _activate(
        self, tx: Transaction, action: Action, entry: ObservedEntry, desired: DesiredState
    ) -> Outcome:
        rev = _desired(action)
        name, env = action.key
        env_state = desired.environments.get(env)
        upstream = env_state.promotion.require_approved_in if env_state else None
        # Re-verified at the moment of promotion, as this transaction sees the registry: what
        # this pass wrote upstream (committed, or earlier in this transaction), else what was.
        if upstream and self.upstream_check:
            active = tx.get_active(name, upstream)
            if active is None or active.digest != rev.digest:
                raise KneoError(
                    f"{rev.digest} is no longer active in {upstream}; not promoting",
                    code=ErrorCode.upstream_changed,
                )
        approved_by = _signed_off(rev)
        approved_by += [a for a in action.approved_by if a not in approved_by]
        previous = entry.active.number if entry.active else None
        if action.target is not None:
            record = tx.set_revision_status(
                name, env, action.target.number, "active", approved_by=approved_by
            )
            self.gate.close(
                tx, name=name, environment=env, digest=rev.digest or "", outcome="activated"
            )
        else:
            self._withdraw_pending(tx, action, entry, "superseded")
            record = _add_revision(
                tx, action, "active", approved_by, [_source(rev), *rev.diagnostics]
            )
        rollout_pass.begin_with_promotion(
            tx,
            self.store,
            env_state.policy if env_state else None,
            name=name,
            environment=env,
            previous=previous,
            revision=record.revision,
            digest=rev.digest,
            commit=rev.commit,
            now=self.clock.now(),
        )
        override = promotion.OVERRIDE_PREFIX + (rev.digest or "")
        if self._open_tasks is None or (  # not known to be absent (a read per activation)
            self._open_tasks and self.gate.task_id(name, env, override) in self._open_tasks
        ):
            self.gate.close(  # a freeze override asked for this digest is no longer needed
                tx, name=name, environment=env, digest=override, outcome="activated"
            )
        _audit(
            tx,
            "bundle.promoted",
            action,
            **_revision_payload(rev, record.revision),
            previous_revision=previous,
            approved_by=approved_by,
            signer_key_ids=list(rev.signer_key_ids),
            drift=action.drift,
        )
        return Outcome(action, True, record.revision)

    def _reject(self, tx: Transaction, action: Action) -> Outcome:
        rev = _desired(action)
        name, env = action.key
        diagnostics = [
            {**p.to_dict(), "fingerprint": rev.fingerprint, "path": rev.path}
            for p in action.reasons
        ] + list(rev.diagnostics)
        if action.target is not None:
            record = tx.set_revision_status(
                name, env, action.target.number, "rejected", diagnostics=diagnostics
            )
            self.gate.close(
                tx, name=name, environment=env, digest=action.target.digest, outcome="rejected"
            )
        else:
            record = _add_revision(
                tx, action, "rejected", _signed_off(rev), diagnostics, no_digest="unknown"
            )
        _audit(
            tx,
            "bundle.rejected",
            action,
            **_revision_payload(rev, record.revision),
            reasons=[p.to_dict() for p in action.reasons],
        )
        return Outcome(action, True, record.revision)

    def _prune(self, tx: Transaction, action: Action, entry: ObservedEntry) -> Outcome:
        name, env = action.key
        number = None
        if action.target is not None:
            number = tx.set_revision_status(name, env, action.target.number, "pruned").revision
        if (
            entry.applied is not None
            and entry.applied.status == "inactive"
            and (action.target is None or entry.applied.number != action.target.number)
        ):
            tx.set_revision_status(name, env, entry.applied.number, "pruned")
        self._withdraw_pending(tx, action, entry, "pruned")
        if action.approved_by and action.target is not None:  # its task resolved with them
            subject = prune_gate.prune_subject(action.target)
            promotion.close_task(
                tx, prune_gate.prune_task_id(self.project, name, env, subject), "pruned"
            )
        _audit(
            tx,
            "bundle.pruned",
            action,
            revision=number,
            digest=action.target.digest if action.target else None,
            # who approved the removal, where the policy in force asks approvers
            approved_by=list(action.approved_by),
        )
        return Outcome(action, True, number)

    def _drift_revert(self, tx: Transaction, action: Action, entry: ObservedEntry) -> Outcome:
        name, env = action.key
        found = entry.active.number if entry.active else None
        if action.target is not None:
            number = tx.set_revision_status(name, env, action.target.number, "active").revision
        else:
            number = None
            if entry.active is not None:
                tx.set_revision_status(name, env, entry.active.number, "pruned")
        _audit(
            tx,
            "bundle.drift_reverted",
            action,
            found_revision=found,
            restored_revision=number,
            message=action.message,
        )
        return Outcome(action, True, number)

    def _request_approval(
        self, tx: Transaction, action: Action, entry: ObservedEntry, desired: DesiredState
    ) -> Outcome:
        rev = _desired(action)
        name, env = action.key
        target = action.target
        if target is None:
            self._withdraw_pending(tx, action, entry, "superseded")
            record = _add_revision(
                tx,
                action,
                "pending_approval",
                _signed_off(rev),
                [_source(rev), *rev.diagnostics],
            )
            number = record.revision
        else:
            number = target.number
        rules = desired.environments[env].promotion
        cid = self.gate.open(
            tx,
            name=name,
            environment=env,
            digest=rev.digest or "",
            revision=number,
            approvers=rules.approvers,
            min_approvals=rules.min_approvals,
            now=self.clock.now(),
            upstream=rules.require_approved_in,
            evals=eval_summary(rules.require_evals, rev.evals, rev.digest or ""),
        )
        _audit(
            tx,
            "promotion.requested",
            action,
            continuation_id=cid,
            revision=number,
            digest=rev.digest,
            approvers=list(rules.approvers),
            min_approvals=rules.min_approvals,
            prompt=promotion.prompt(name, env, rev.digest or ""),
        )
        return Outcome(action, True, number)

    def withdraw_prunes(
        self,
        previous: ControllerStatus | None,
        now: Iterable[Mapping[str, Any]],
        scope: Collection[str] | None,
    ) -> None:
        """Close the approval task of each removal the last pass held (``previous``
        status) and this one no longer holds (``now``) among the bundles it planned
        (``scope``; ``None``: all): its file came back, or it was pruned. An approval left
        open would otherwise count for a removal asked later of the same revision."""
        still = {h.get("task") for h in now}
        before = (previous.details.get("prunes") if previous is not None else None) or ()
        gone = [
            str(h["task"])
            for h in before
            if h.get("task") and h["task"] not in still and (scope is None or h["bundle"] in scope)
        ]
        if gone:
            with self.store.transaction() as tx:
                for cid in gone:
                    promotion.close_task(tx, cid, "withdrawn")

    def _withdraw_pending(
        self, tx: Transaction, action: Action, entry: ObservedEntry, why: str
    ) -> None:
        """A pending promotion of another digest is superseded (never activated later)."""
        pending = entry.pending
        if pending is None or (
            action.target is not None and action.target.number == pending.number
        ):
            return
        tx.set_revision_status(
            action.name,
            action.environment,
            pending.number,
            "rejected",
            diagnostics=[
                {"code": f"promotion_{why}", "message": f"promotion {why} before it was approved"}
            ],
        )
        self.gate.close(
            tx, name=action.name, environment=action.environment, digest=pending.digest, outcome=why
        )


def _refusal_event(reason: str) -> str:
    """The audit event of a gate's refusal: a failing eval gate is news to the team (a
    notification), a removal held back is the prune's."""
    if reason == EVALS:
        return "promotion.evals_failed"
    return f"bundle.{reason}" if reason in prune_gate.PRUNE_REASONS else "bundle.refused"


def _signed_off(rev: DesiredRevision) -> list[str]:
    """Who approved the bundle when it was signed (the first of a revision's approvers)."""
    return [rev.approved_by] if rev.approved_by else []


def _add_revision(
    tx: Transaction,
    action: Action,
    status: str,
    approved_by: list[str],
    diagnostics: list[Mapping[str, Any]],
    *,
    no_digest: str = "",
) -> BundleRevision:
    """The action's desired revision as a new registry row with ``status``."""
    rev = _desired(action)
    return tx.add_revision(
        action.name,
        action.environment,
        digest=rev.digest or no_digest,
        commit=rev.commit,
        signer_key_ids=rev.signer_key_ids,
        approved_by=approved_by,
        status=status,
        diagnostics=diagnostics,
        spec=dict(rev.spec or {}),
        code=rev.code_files if status != "rejected" else None,
    )


def _revision_payload(rev: DesiredRevision, revision: int) -> dict[str, Any]:
    """Which revision an audit event is about, and where in Git it came from."""
    return {
        "revision": revision,
        "digest": rev.digest,
        "commit": rev.commit,
        "path": rev.path,
    }


def _audit(
    tx: Transaction,
    event_type: str,
    action: Action,
    *,
    continuation_id: str | None = None,
    **payload: object,
) -> None:
    """A controller audit event about the action's bundle and environment."""
    tx.add_audit(
        event_type,
        actor=ACTOR,
        continuation_id=continuation_id,
        payload={"bundle": action.name, "environment": action.environment, **payload},
    )


def _desired(action: Action) -> DesiredRevision:
    if action.revision is None:  # the planner always attaches one for these kinds
        raise KneoError(f"{action.kind.value} without a revision", code=ErrorCode.internal_error)
    return action.revision


def _source(rev: DesiredRevision) -> Mapping[str, Any]:
    return {
        "code": "source",
        "message": f"{rev.path} at {rev.commit}",
        "path": rev.path,
        "fingerprint_of_source": rev.fingerprint,
    }
