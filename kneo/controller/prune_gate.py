"""Taking a revision out of an environment is gated like putting one in (issue 70). Pure.

A commit that deletes ``bundles/<name>/<env>.json`` (or renames the environment's file, or
the bundle's) carries no signature and no approval, yet it would prune the revision serving
there. So a prune of a *serving* revision is judged by the environment's **policy in force**
(the ratchet's: the policy as it stood before the commit, never one the same commit
lowers, and kept when the environment's file is deleted or renamed):

* ``promotion.require_human_approval``: the prune waits for ``min_approvals`` of the
  ``approvers`` on an approval task ("Remove <name>@<digest> from <env>?"), as a promotion
  does; one rejection keeps the revision serving (``prune_rejected``, not asked again for
  that revision). Meanwhile ``prune_held``: the revision keeps serving.
* ``required_signatures`` above one and no human approval: a deletion can carry no
  signature, so the prune is refused (``prune_refused``) and the revision keeps serving;
  the way out (restore the file, or require human approval there) is in the message.
* neither (a one-key environment such as dev): pruned at once, as before.

A pending promotion (nothing serving yet) is withdrawn at once whatever the policy: it
takes nothing out of production; nor is a revision someone activated by hand outside the
controller (drift: it is put back to what Git says). The decisions are recorded under
:func:`prune_subject`, one per revision, so an approval to remove revision 4 never counts
for a later revision of the same digest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from kneo.controller.model import (
    Action,
    ActionKind,
    Approvals,
    BundleKey,
    DesiredEnvironment,
    ObservedEntry,
    Problem,
    RevisionRef,
)
from kneo.people import counted

#: Decisions on removing a revision are recorded under ``prune:r<revision>:<digest>``.
PRUNE_PREFIX = "prune:"

# Action reasons and problem codes (stable strings; the CLI, audit and status carry them).
PRUNE_HELD = "prune_held"
PRUNE_REFUSED = "prune_refused"
PRUNE_REJECTED = "prune_rejected"
PRUNE_REASONS = frozenset({PRUNE_HELD, PRUNE_REFUSED, PRUNE_REJECTED})

#: ``Promoted=False`` condition reason of each.
CONDITION_REASONS = {
    PRUNE_HELD: "PruneHeld",
    PRUNE_REFUSED: "PruneRefused",
    PRUNE_REJECTED: "PruneRejected",
}


def prune_subject(revision: RevisionRef) -> str:
    """What people's decisions on removing ``revision`` are recorded under."""
    return f"{PRUNE_PREFIX}r{revision.number}:{revision.digest}"


def prune_task_id(project: str, name: str, environment: str, subject: str) -> str:
    """The approval task of one removal: deterministic (reopening finds it) and distinct per
    project, since task ids are unique across the whole database."""
    raw = f"{project}\0{name}\0{environment}\0{subject}".encode()
    return f"cont_prune_{hashlib.sha256(raw).hexdigest()[:20]}"


def prune_question(name: str, environment: str, revision: RevisionRef) -> str:
    return f"Remove {name}@{revision.digest} (revision {revision.number}) from {environment}?"


def guards_removal(env: DesiredEnvironment | None) -> bool:
    """Whether the policy in force gates taking a revision out of ``env``."""
    return env is not None and (env.promotion.require_human_approval or env.required_signatures > 1)


def judge_prune(
    key: BundleKey,
    entry: ObservedEntry,
    env: DesiredEnvironment | None,
    decisions: Mapping[tuple[str, str, str], Approvals],
) -> Action | None:
    """``None`` when nothing gates the prune; otherwise the action that decides it: the
    prune itself once approved (with who approved), or a refusal (held, refused, rejected)
    that keeps the active revision serving."""
    active = entry.active
    if active is None or entry.drifted or not guards_removal(env):
        return None  # nothing serves, or what serves was put there by hand (drift)
    assert env is not None
    name, environment = key
    subject = prune_subject(active)
    serving = f"revision {active.number} ({active.digest[:19]}) keeps serving"
    rules = env.promotion
    if not rules.require_human_approval:
        keys = ", ".join(env.accepted_key_ids) if env.accepted_key_ids else "accepted keys"
        message = (
            f"no bundle file for {name} in {environment}, but {environment}'s policy in force "
            f"asks {env.required_signatures} signatures ({keys}) of what goes in, and a "
            f"deletion carries none: the prune is refused; {serving}. Restore the file, or "
            f"require human approval in {environment} (a tightening, in force at once) to "
            "have its approvers decide the removal"
        )
        return _refuse(key, PRUNE_REFUSED, message, active, env)
    decided = decisions.get((name, environment, subject), Approvals())
    if decided.rejected_by:
        who = ", ".join(sorted(decided.rejected_by))
        message = f"removing {name} from {environment} was rejected by {who}; {serving}"
        return _refuse(key, PRUNE_REJECTED, message, active, env)
    people = tuple(sorted(counted(decided.approved_by, rules.approvers)))
    if len(people) >= rules.min_approvals:
        return Action(
            ActionKind.PRUNE,
            name,
            environment,
            "pruned",
            f"no bundle file for {name} in {environment}; deactivating revision "
            f"{active.number}, removal approved by {', '.join(people)}",
            target=active,
            approved_by=people,
        )
    who = f" from {', '.join(rules.approvers)}" if rules.approvers else ""
    message = (
        f"no bundle file for {name} in {environment}; the removal waits for "
        f"{environment}'s approvers ({len(people)} of {rules.min_approvals} approvals{who}, "
        f"as a promotion there); {serving}"
    )
    return _refuse(key, PRUNE_HELD, message, active, env, people, request_task=True)


def _refuse(
    key: BundleKey,
    reason: str,
    message: str,
    active: RevisionRef,
    env: DesiredEnvironment,
    approved_by: tuple[str, ...] = (),
    *,
    request_task: bool = False,
) -> Action:
    name, environment = key
    return Action(
        ActionKind.REFUSE,
        name,
        environment,
        reason,
        message,
        target=active,
        reasons=(Problem(reason, message, path=f"bundles/{name}/{environment}.json"),),
        approved_by=approved_by,
        request_task=request_task,
    )


def needs(env: DesiredEnvironment) -> dict[str, Any]:
    """What the removal needs, as the status shows it."""
    rules = env.promotion
    return {
        "approvals": rules.min_approvals if rules.require_human_approval else 0,
        "approvers": list(rules.approvers),
        "signatures": env.required_signatures,
        "keys": None if env.accepted_key_ids is None else list(env.accepted_key_ids),
    }


def held(
    actions: Iterable[Action],
    environments: Mapping[str, DesiredEnvironment],
    project: str,
) -> list[dict[str, Any]]:
    """``prunes`` in the controller status: every removal held back, and why."""
    out = []
    for action in actions:
        if action.kind is not ActionKind.REFUSE or action.reason not in PRUNE_REASONS:
            continue
        target = action.target
        assert target is not None
        env = environments.get(action.environment)
        out.append(
            {
                "bundle": action.name,
                "environment": action.environment,
                "revision": target.number,
                "digest": target.digest,
                "state": action.reason.removeprefix("prune_"),
                "message": action.message,
                "approved_by": list(action.approved_by),
                "needs": needs(env) if env is not None else {},
                "task": prune_task_id(
                    project, action.name, action.environment, prune_subject(target)
                )
                if action.reason == PRUNE_HELD
                else None,
            }
        )
    return sorted(out, key=lambda h: (h["environment"], h["bundle"]))


def problems(prunes: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """The held removals as the pass's problems (``prune_held``, ...), each with its file."""
    return [
        {
            "code": f"prune_{h['state']}",
            "message": str(h["message"]),
            "path": f"bundles/{h['bundle']}/{h['environment']}.json",
        }
        for h in prunes
    ]
