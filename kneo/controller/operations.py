"""Day-two registry operations people perform: rollback, pin, block, suspend, and their undo.

One function per operation, shared by the CLI (``kneo registry ...``, ``kneo controller
suspend|resume``), the HTTP API and the console, so each is validated, written and audited
the same way whoever asks. Each writes its change and its audit event (with the person
acting) in one transaction and marks the key changed, so the controller's next pass
(incremental or not) sees it.

A rollback does not go through Git (a revert commit needs CI and signing, which is what a
rollback must not wait for): it copies an earlier revision that was in force into a new,
active revision and pins the bundle to it. Before it does, the digest must still hold
against today's trust, as the controller last published it (:data:`TRUST_METADATA_KEY`):
the stored spec hashes to the digest, the signing keys are still trusted and valid, accepted
by the environment, and enough of them. Where the environment requires human approval the
rollback waits for the same approvers (M-of-N) in a rollback task, and the approval that
completes it performs it.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

from kneo.bundle.digest import spec_digest
from kneo.clock import utc_iso
from kneo.controller.promotion import (
    check_decision,
    open_approval_task,
    outcome_of,
    resolve_task,
    scoped_id,
    take_task,
)
from kneo.errors import Conflict, ErrorCode, InvalidRequest, NotFound
from kneo.names import check_name
from kneo.people import counted
from kneo.projects import DEFAULT_PROJECT_ID

if TYPE_CHECKING:
    from collections.abc import Iterable

    from kneo.bundle.keys import TrustedKey
    from kneo.store import BlockedDigest, BundleRevision, Pin
    from kneo.store.api import Store
    from kneo.store.transaction import Transaction

#: Store metadata key: what the controller trusts now (key validity windows) and each
#: environment's signature and approval rules, published by every pass that changes them,
#: so a rollback on any replica is judged against today's trust.
TRUST_METADATA_KEY = "registry.trust"

_IN_FORCE = ("active", "inactive", "pruned")


def _key(bundle: str, environment: str) -> None:
    check_name(bundle, kind="bundle name", field="bundle")
    check_name(environment, kind="environment")


def _short(digest: str) -> str:
    return digest[:19]


# --------------------------------------------------------------------------- suspend


def suspend(
    store: Store,
    bundle: str,
    environment: str,
    *,
    actor: str,
    reason: str | None = None,
) -> dict[str, Any]:
    """Make the controller leave (bundle, environment) alone; idempotent, audited."""
    _key(bundle, environment)
    with store.transaction() as tx:
        record = tx.set_suspended(bundle, environment, True, reason=reason, suspended_by=actor)
        assert record is not None  # a set returns the record in force
        tx.add_audit(
            "bundle.suspended",
            actor=actor,
            payload={"bundle": bundle, "environment": environment, "reason": reason},
        )
    return {
        "bundle": bundle,
        "environment": environment,
        "suspended": True,
        "reason": record.reason,
        "suspended_by": record.suspended_by,
    }


def resume(store: Store, bundle: str, environment: str, *, actor: str) -> dict[str, Any]:
    """Let the controller manage (bundle, environment) again; audited when it was suspended."""
    _key(bundle, environment)
    with store.transaction() as tx:
        lifted = tx.set_suspended(bundle, environment, False) is not None
        if lifted:
            tx.add_audit(
                "bundle.resumed",
                actor=actor,
                payload={"bundle": bundle, "environment": environment},
            )
    return {"bundle": bundle, "environment": environment, "suspended": False, "changed": lifted}


# --------------------------------------------------------------------------- pin / block


def pin_view(pin: Pin | None) -> dict[str, Any] | None:
    if pin is None:
        return None
    return {
        "revision": pin.revision,
        "digest": pin.digest,
        "reason": pin.reason,
        "pinned_by": pin.pinned_by,
        "since": utc_iso(pin.created_at),
    }


def pin(
    store: Store, bundle: str, environment: str, *, actor: str, reason: str | None = None
) -> dict[str, Any]:
    """Hold (bundle, environment) at its active revision until unpinned (to go back to an
    earlier one, roll back: it pins its target)."""
    _key(bundle, environment)
    active = store.registry.get_active(bundle, environment)
    if active is None:
        raise NotFound(
            f"bundle {bundle!r} has no active revision in {environment!r} to pin",
            resource="bundle",
        )
    with store.transaction() as tx:
        record = tx.set_pin(bundle, environment, active.revision, reason=reason, pinned_by=actor)
        tx.add_audit(
            "bundle.pinned",
            actor=actor,
            payload={
                "bundle": bundle,
                "environment": environment,
                "revision": active.revision,
                "digest": active.digest,
                "reason": reason,
            },
        )
    return {"bundle": bundle, "environment": environment, "pin": pin_view(record)}


def unpin(store: Store, bundle: str, environment: str, *, actor: str) -> dict[str, Any]:
    """Lift the pin: the controller promotes what Git asks for again on its next pass."""
    _key(bundle, environment)
    with store.transaction() as tx:
        lifted = tx.set_pin(bundle, environment, None)
        if lifted is not None:
            tx.add_audit(
                "bundle.unpinned",
                actor=actor,
                payload={
                    "bundle": bundle,
                    "environment": environment,
                    "revision": lifted.revision,
                    "digest": lifted.digest,
                },
            )
    return {"bundle": bundle, "environment": environment, "pin": None, "changed": bool(lifted)}


_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def _check_digest(digest: str) -> None:
    if not _DIGEST.fullmatch(digest):
        raise InvalidRequest(
            f"{digest[:80]!r} is not a spec digest (sha256:<64 lower-case hex digits>)",
            field="digest",
        )


def block(store: Store, digest: str, *, actor: str, reason: str) -> dict[str, Any]:
    """Never promote ``digest`` again, in any environment, until unblocked. What is active
    keeps serving (roll back to replace it)."""
    _check_digest(digest)
    with store.transaction() as tx:
        record = tx.set_blocked(digest, True, reason=reason, blocked_by=actor)
        assert record is not None  # a set returns the record in force
        tx.add_audit(
            "bundle.digest_blocked",
            actor=actor,
            payload={"digest": digest, "reason": record.reason},
        )
    return {**blocked_view(record), "blocked": True}


def blocked_view(record: BlockedDigest) -> dict[str, Any]:
    return {
        "digest": record.digest,
        "reason": record.reason,
        "blocked_by": record.blocked_by,
        "since": utc_iso(record.created_at),
    }


def unblock(store: Store, digest: str, *, actor: str) -> dict[str, Any]:
    _check_digest(digest)
    with store.transaction() as tx:
        lifted = tx.set_blocked(digest, False) is not None
        if lifted:
            tx.add_audit("bundle.digest_unblocked", actor=actor, payload={"digest": digest})
    return {"digest": digest, "blocked": False, "changed": lifted}


# --------------------------------------------------------------------------- rollback


def publish_trust(
    store: Store, keyring: Iterable[TrustedKey], environments: dict[str, dict[str, Any]]
) -> None:
    """Record today's trust (see :data:`TRUST_METADATA_KEY`); written only when it changed."""
    current = {
        "keys": {
            k.key_id: {"not_before": utc_iso(k.not_before), "not_after": utc_iso(k.not_after)}
            for k in keyring
        },
        "environments": environments,
    }
    stored = store.metadata.get_metadata(TRUST_METADATA_KEY, None) or {}
    if stored.get("keys") == current["keys"]:
        merged = {**(stored.get("environments") or {}), **environments}
        current["environments"] = merged
        if merged == stored.get("environments"):
            return
    else:
        current["environments"] = {**(stored.get("environments") or {}), **environments}
    with store.transaction() as tx:
        tx.set_metadata(TRUST_METADATA_KEY, current)


def _untrusted(why: str, **details: object) -> Conflict:
    return Conflict(why, code=ErrorCode.rollback_untrusted, **details)


def check_trust(store: Store, revision: BundleRevision, now: datetime) -> dict[str, Any]:
    """Whether ``revision`` still verifies against today's trust; its environment's rules.
    Raises ``409 rollback_untrusted`` naming what no longer holds."""
    if spec_digest(revision.spec) != revision.digest:
        raise _untrusted(
            f"revision {revision.revision}'s stored spec does not hash to {revision.digest}"
        )
    trust = store.metadata.get_metadata(TRUST_METADATA_KEY, None) or {}
    keys: dict[str, Any] = trust.get("keys") or {}
    rules: dict[str, Any] = (trust.get("environments") or {}).get(revision.environment) or {}
    if not trust:
        raise _untrusted("the controller has not published its trust yet (run a reconcile)")
    accepted = rules.get("accepted_key_ids")
    valid = []
    for key_id in revision.signer_key_ids:
        window = keys.get(key_id)
        if window is None:
            raise _untrusted(f"signing key {key_id!r} is no longer trusted", key_id=key_id)
        before, after = window.get("not_before"), window.get("not_after")
        stamp = utc_iso(now) or ""
        if (before and stamp < before) or (after and stamp > after):
            raise _untrusted(f"signing key {key_id!r} is not valid now", key_id=key_id)
        if accepted is not None and key_id not in accepted:
            raise _untrusted(
                f"signing key {key_id!r} is not accepted in {revision.environment}",
                key_id=key_id,
            )
        valid.append(key_id)
    required = int(rules.get("required_signatures") or 1)
    if len(set(valid)) < required:
        raise _untrusted(
            f"{revision.environment} requires {required} signatures; revision "
            f"{revision.revision} has {len(set(valid))}"
        )
    return rules


def rollback_task_id(
    bundle: str, environment: str, revision: int, since: int, project_id: int = DEFAULT_PROJECT_ID
) -> str:
    """One rollback task per (key, target, revision active when asked) in a project
    (:func:`~kneo.controller.promotion.scoped_id`)."""
    key = f"{bundle}\0{environment}\0{revision}\0{since}"
    return scoped_id("cont_rollback_", key, project_id)


def rollback(
    store: Store,
    bundle: str,
    environment: str,
    *,
    to: int,
    actor: str,
    reason: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Put revision ``to`` back in force and pin it (or open the approval task first).

    ``{"status": "rolled_back", "revision": <new>, "pin": ...}`` or
    ``{"status": "awaiting_approval", "continuation_id": ...}``.
    """
    _key(bundle, environment)
    now = now or store.clock.now()
    target = store.registry.get_revision(bundle, environment, to)
    active = store.registry.get_active(bundle, environment)
    if target.status not in _IN_FORCE:
        raise Conflict(
            f"revision {to} of {bundle!r} in {environment!r} is {target.status}; only a "
            "revision that was in force can be rolled back to",
            code=ErrorCode.rollback_target_invalid,
        )
    if active is not None and active.digest == target.digest:
        raise Conflict(
            f"{_short(target.digest)} is already active in {environment} "
            f"(revision {active.revision})",
            code=ErrorCode.already_active,
        )
    blocked = store.registry.holds(names=()).blocked
    if target.digest in blocked:
        b = blocked[target.digest]
        raise Conflict(
            f"{_short(target.digest)} is blocked by {b.blocked_by or 'someone'}: {b.reason}",
            code=ErrorCode.digest_blocked,
        )
    rules = check_trust(store, target, now)
    if rules.get("require_human_approval"):
        return _open_rollback_task(
            store, target, active, rules, actor=actor, reason=reason, now=now
        )
    with store.transaction() as tx:
        return perform_rollback(tx, target, active, actor=actor, reason=reason)


def perform_rollback(
    tx: Transaction,
    target: BundleRevision,
    active: BundleRevision | None,
    *,
    actor: str,
    reason: str | None,
    approved_by: list[str] | None = None,
) -> dict[str, Any]:
    """Inside ``tx``: the new active revision copying ``target``, its pin, the audit event."""
    bundle, environment = target.bundle_name, target.environment
    note = f"rollback to revision {target.revision} by {actor}" + (f": {reason}" if reason else "")
    record = tx.add_revision(
        bundle,
        environment,
        digest=target.digest,
        commit=target.commit,
        signer_key_ids=target.signer_key_ids,
        approved_by=[
            *target.approved_by,
            *(a for a in approved_by or () if a not in target.approved_by),
        ],
        status="active",
        diagnostics=[{"code": ErrorCode.rollback, "message": note, "rollback_of": target.revision}],
        spec=target.spec,
    )
    pinned = tx.set_pin(bundle, environment, record.revision, reason=note, pinned_by=actor)
    tx.set_conditions(
        bundle,
        environment,
        [("Ready", "True", "RolledBack", f"serving {_short(target.digest)}; {note}")],
    )
    # the audit event records what the answer says, and what was replaced and why
    rolled_back = {
        "bundle": bundle,
        "environment": environment,
        "revision": record.revision,
        "rollback_of": target.revision,
        "digest": target.digest,
        "previous_revision": active.revision if active is not None else None,
    }
    tx.add_audit(
        "bundle.rolled_back",
        actor=actor,
        payload={
            **rolled_back,
            "previous_digest": active.digest if active is not None else None,
            "reason": reason,
            "approved_by": approved_by or [],
        },
    )
    return {"status": "rolled_back", **rolled_back, "pin": pin_view(pinned)}


def _rollback_task(
    target: BundleRevision,
    active: BundleRevision | None,
    rules: dict[str, Any],
    *,
    actor: str,
    reason: str | None,
    project_id: int,
) -> tuple[str, dict[str, Any], str]:
    """``(continuation id, context, question)`` of the approval task for a rollback."""
    bundle, environment = target.bundle_name, target.environment
    since = active.revision if active is not None else 0
    cid = rollback_task_id(bundle, environment, target.revision, since, project_id)
    context = {
        "type": "rollback",
        "bundle": bundle,
        "environment": environment,
        "digest": target.digest,
        "revision": target.revision,
        "since_revision": since,
        "requested_by": actor,
        "reason": reason,
        "approvers": list(rules.get("approvers") or []),
        "min_approvals": int(rules.get("min_approvals") or 1),
        # approvals are recorded under this subject, not the digest: earlier approvals of
        # the digest's promotion must not count for its rollback
        "subject": f"rollback:{cid.removeprefix('cont_rollback_')}",
    }
    prompt = (
        f"Roll {bundle} in {environment} back to revision {target.revision} "
        f"({_short(target.digest)})?"
        + (f" ({actor}: {reason})" if reason else f" (asked by {actor})")
    )
    return cid, context, prompt


def _open_rollback_task(
    store: Store,
    target: BundleRevision,
    active: BundleRevision | None,
    rules: dict[str, Any],
    *,
    actor: str,
    reason: str | None,
    now: datetime,
) -> dict[str, Any]:
    """The environment requires approval: a task its approvers decide (M-of-N)."""
    project_id = int(getattr(store, "project_id", DEFAULT_PROJECT_ID))
    cid, context, question = _rollback_task(
        target, active, rules, actor=actor, reason=reason, project_id=project_id
    )
    bundle, environment = target.bundle_name, target.environment
    summary = {
        "bundle": bundle,
        "environment": environment,
        "rollback_of": target.revision,
        "digest": target.digest,
        "approvers": context["approvers"],
        "min_approvals": context["min_approvals"],
    }
    with store.transaction() as tx:
        opened = open_approval_task(
            tx,
            cid,
            wait_key=f"rollback:{environment}",
            step_id="rollback",
            question=question,
            context=context,
            name=bundle,
            environment=environment,
            now=now,
        )
        if opened:
            tx.add_audit(
                "bundle.rollback_requested",
                actor=actor,
                continuation_id=cid,
                payload={**summary, "reason": reason},
            )
    return {"status": "awaiting_approval", **summary, "continuation_id": cid}


def decide_rollback(
    store: Store,
    continuation_id: str,
    *,
    approver: str,
    decision: str,
    comment: str | None = None,
) -> dict[str, Any]:
    """One approver's decision on a rollback task; the approval reaching ``min_approvals``
    performs the rollback in the same transaction (if the bundle has not moved since).

    A rollback task is a promotion task (``workflow_kind``) whose context ``type`` is
    ``rollback``: it shows in the same inbox and is decided through the same resume."""
    check_decision(decision, "rollback")
    with store.transaction() as tx:
        task, _ = take_task(tx, continuation_id, kind="rollback", approver=approver)
        context = task.context
        name, env, subject = context["bundle"], context["environment"], context["subject"]
        approvers = list(context.get("approvers") or [])
        tx.add_promotion_approval(
            name, env, subject, approver=approver, decision=decision, comment=comment
        )
        decisions = tx.list_promotion_approvals(name, env, subject)
        approved = sorted(
            counted([a.approver for a in decisions if a.decision == "approved"], approvers)
        )
        required = int(context.get("min_approvals") or 1)
        outcome = outcome_of(decision, len(approved), required)
        result: dict[str, Any] = {
            "continuation_id": continuation_id,
            "bundle": name,
            "environment": env,
            "digest": context["digest"],
            "decision": decision,
            "approvals": len(approved),
            "required": required,
            "outcome": outcome,
        }
        tx.add_audit(
            f"bundle.rollback_{decision}",
            actor=approver,
            continuation_id=continuation_id,
            payload={k: v for k, v in result.items() if k != "continuation_id"},
        )
        if outcome is not None:
            resolve_task(tx, continuation_id, task, outcome)
        if outcome == "approved":
            result["rollback"] = _approved_rollback(tx, context, approved, approver)
    return result


def _approved_rollback(
    tx: Transaction, context: dict[str, Any], approved: list[str], approver: str
) -> dict[str, Any]:
    """Inside the deciding transaction: perform the rollback, unless the bundle moved on
    since it was asked (then ``stale_state``: ask again)."""
    name, env = context["bundle"], context["environment"]
    target = tx.get_revision(name, env, int(context["revision"]))
    active = tx.get_active(name, env)
    number = active.revision if active is not None else None
    if (number or 0) != context.get("since_revision"):
        raise Conflict(
            f"{name} in {env} changed since the rollback was asked (now revision "
            f"{number}); ask again",
            code=ErrorCode.stale_state,
        )
    return perform_rollback(
        tx,
        target,
        active,
        actor=str(context.get("requested_by") or approver),
        reason=context.get("reason"),
        approved_by=approved,
    )
