"""The policy in force, and how a policy change from Git reaches it: tightening at once,
loosening only with what the policy in force demands (issue 53).

Every gate of an environment (signatures, approvals, freezes, downgrades, eval suites, run
admission, budgets, grants) is read from ``environments/<env>.yaml``. If the controller
took the file from the very commit whose bundles it judges, anyone who can push could lower
the gates and pass them in one commit. So the controller keeps the *policy in force* per
environment in the store (:func:`~kneo.controller.policy_record.record_key`) and, each
pass, compares the commit's effective policy with it (:func:`kneo.policy.ratchet.loosened`):

* no gate loosened (a tightening, or only prose): the commit's policy takes effect at once;
* a gate loosened: the change waits until it carries what the policy in force demands for a
  promotion there, applied to the change itself: ``required_signatures`` of its
  ``accepted_key_ids`` over the new policy (``environments/approvals/<env>.json``, written
  by ``kneo policy sign``), and, where it requires human approval, ``min_approvals`` of its
  ``approvers`` deciding the approval task the controller opens ("Loosen prod:
  required_signatures 2 → 1, freeze removed: ..."). Meanwhile the policy in force judges
  every bundle, the same commit's included; ``policy_held`` says so, with the commit and
  the gates, in the problems, the controller status and one ``policy.held`` audit event;
* a file deleted or that cannot be read (invalid, a key twice): the last verified policy
  stays (``policy_kept``); a removal takes effect only signed like a loosening;
* a new environment is a loosening with no policy of its own in force: it needs what the
  strictest environment in force demands, and nothing is promoted there until then
  (``policy_not_in_force``);
* below a floor of the controller's own configuration (:mod:`kneo.policy.floors`): refused
  whole (``policy_below_floor``), whatever signs it.

The very first pass (nothing in force yet: a new installation, or an upgrade) adopts the
commit's valid policies as they are (audited ``policy.adopted``); floors bound even that.
A force-push to an older policy is compared like any other commit. :class:`PolicyRatchet`
decides (no I/O but the callables it is given); the controller stores and audits. What
is stored is :mod:`kneo.controller.policy_record`'s.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from kneo.bundle.digest import sha256_digest
from kneo.bundle.keys import Keyring
from kneo.bundle.policy_approval import approval_path, verify_policy_approval
from kneo.clock import utc_iso
from kneo.controller.model import Approvals, DesiredEnvironment, Problem
from kneo.controller.policy_record import InForce, Pending, PolicyOutcome, PolicyRecord
from kneo.controller.promotion import open_approval_task, task_id
from kneo.errors import BundleError, ErrorCode
from kneo.people import counted
from kneo.policy.environment import EnvironmentPolicy
from kneo.policy.floors import NO_FLOORS, Floors
from kneo.policy.ratchet import (
    ENVIRONMENT_GATE,
    LOOSENED,
    GateChange,
    compare,
    policy_digest,
    summary,
)
from kneo.projects import DEFAULT_PROJECT_ID
from kneo.spec.yaml_io import dump_yaml

if TYPE_CHECKING:
    from kneo.store.transaction import Transaction

#: The bundle name policy approvals are recorded under (their subject is ``policy:<digest>``).
POLICY_NAME = "policy"
SUBJECT_PREFIX = "policy:"


def policy_subject(environment: str, replaces: str | None, digest: str) -> str:
    """What people's decisions on a policy change are recorded under: the transition from
    the policy in force (``replaces``) to ``digest``, so an approval of one loosening never
    counts for the same policy coming back after a tightening."""
    return SUBJECT_PREFIX + sha256_digest(f"{environment}\0{replaces or '-'}\0{digest}".encode())


def policy_task_id(environment: str, subject: str, project_id: int = DEFAULT_PROJECT_ID) -> str:
    """The approval task of one policy change (one per environment, transition and
    project)."""
    return task_id(POLICY_NAME, environment, subject, project_id)


@dataclass(frozen=True)
class _Auth:
    """Whether a change is authorized, what it has and what it lacks."""

    ok: bool
    needs: Mapping[str, Any]
    missing: str = ""
    signers: tuple[str, ...] = ()
    approved_by: tuple[str, ...] = ()
    task: str | None = None
    subject: str | None = None

    def pending_fields(self) -> dict[str, Any]:
        """What a change held for authorization records of it (its :class:`Pending`
        fields): a held loosening and a held removal record the same."""
        return {
            "needs": self.needs,
            "signers": self.signers,
            "approved_by": self.approved_by,
            "task": self.task,
            "subject": self.subject,
        }


#: Reads ``environments/approvals/<env>.json`` at the commit (``None``: no such file).
ApprovalReader = Callable[[str], bytes | None]
#: Decisions recorded on a policy change: ``(environment, subject) -> Approvals``.
DecisionReader = Callable[[str, str], Approvals]


class PolicyRatchet:
    """Decides, each pass, which policy judges each environment (see the module)."""

    def __init__(
        self, keyring: Keyring, floors: Floors = NO_FLOORS, *, project_id: int = DEFAULT_PROJECT_ID
    ) -> None:
        self.keyring = keyring
        self.floors = floors
        #: the project whose approval tasks it names (:func:`policy_task_id`)
        self.project_id = project_id

    def decide(
        self,
        record: PolicyRecord | None,
        candidates: Mapping[str, DesiredEnvironment],
        *,
        commit: str,
        now: datetime,
        read_approval: ApprovalReader,
        decisions: DecisionReader,
    ) -> PolicyOutcome:
        """The environments in force at ``commit`` and the record to keep."""
        if record is None:
            return self._adopt(candidates, commit, now)
        if not record.pending and not self.floors.environments and _same(record, candidates):
            return PolicyOutcome(record, dict(candidates), changed=False)
        step = _Step(self, record, commit, now, read_approval, decisions)
        for name in sorted(set(record.in_force) | set(candidates)):
            step.environment(name, record.in_force.get(name), candidates.get(name))
        return step.outcome()

    def _adopt(
        self, candidates: Mapping[str, DesiredEnvironment], commit: str, now: datetime
    ) -> PolicyOutcome:
        """Nothing in force yet: the commit's valid policies, those within their floors."""
        step = _Step(self, PolicyRecord(), commit, now, lambda _: None, _no_decisions)
        adopted = []
        for name, env in sorted(candidates.items()):
            if env.policy is None or env.problems:
                step.effective[name] = env
            elif step.floor_refuses(name, env, None):
                continue
            else:
                step.in_force[name] = _in_force(env, commit, now, "adopted")
                step.effective[name] = env
                adopted.append(name)
        outcome = step.outcome()
        outcome.changed = True
        if adopted:
            outcome.events.append(("policy.adopted", {"commit": commit, "environments": adopted}))
        return outcome


def policy_diff(old: EnvironmentPolicy | None, new: EnvironmentPolicy | None) -> str:
    """The fields a file sets, before and after, as a unified diff of YAML (defaults left
    out on both sides, as a reviewer writes the file)."""

    def lines(policy: EnvironmentPolicy | None) -> list[str]:
        if policy is None:
            return []
        data = policy.model_dump(mode="json", by_alias=True, exclude_defaults=True)
        return dump_yaml(data).splitlines(keepends=True)

    return "".join(difflib.unified_diff(lines(old), lines(new), "in force", "proposed"))


def _no_decisions(_environment: str, _subject: str) -> Approvals:
    return Approvals()


def _same(record: PolicyRecord, candidates: Mapping[str, DesiredEnvironment]) -> bool:
    """Whether the commit's files are exactly those in force (the common pass: nothing to
    compare)."""
    if set(record.in_force) != set(candidates):
        return False
    for name, env in candidates.items():
        if (
            env.problems
            or (env.path, env.blob_sha, env.config_sha) != record.in_force[name].identity
        ):
            return False
    return True


def _in_force(
    env: DesiredEnvironment,
    commit: str,
    now: datetime,
    how: str,
    signers: tuple[str, ...] = (),
    approved_by: tuple[str, ...] = (),
) -> InForce:
    assert env.policy is not None
    return InForce(
        env.name,
        env.path,
        env.blob_sha,
        env.config_sha,
        env.policy,
        policy_digest(env.name, env.policy),
        commit,
        utc_iso(now) or "",
        how,
        signers,
        approved_by,
    )


def _strictest(in_force: Mapping[str, InForce]) -> InForce | None:
    """The environment in force whose promotions demand the most (signatures first)."""

    def weight(f: InForce) -> tuple[int, bool, int, str]:
        promotion = f.policy.promotion
        return (
            f.policy.required_signatures,
            promotion.require_human_approval,
            promotion.min_approvals if promotion.require_human_approval else 0,
            f.environment,
        )

    return max(in_force.values(), key=weight, default=None)


class _Step:
    """One pass of :meth:`PolicyRatchet.decide`: environment by environment."""

    def __init__(
        self,
        ratchet: PolicyRatchet,
        record: PolicyRecord,
        commit: str,
        now: datetime,
        read_approval: ApprovalReader,
        decisions: DecisionReader,
    ) -> None:
        self.ratchet, self.record, self.commit, self.now = ratchet, record, commit, now
        self.read_approval, self.decisions = read_approval, decisions
        self.in_force: dict[str, InForce] = dict(record.in_force)
        self.pending: dict[str, Pending] = {}
        self.effective: dict[str, DesiredEnvironment] = {}
        self.events: list[tuple[str, dict[str, Any]]] = []

    # ---------------------------------------------------------------- one environment

    def environment(
        self, name: str, in_force: InForce | None, candidate: DesiredEnvironment | None
    ) -> None:
        if candidate is None:
            self._gone(name, in_force)
        elif candidate.policy is None or candidate.problems:
            self._unusable(name, in_force, candidate)
        elif in_force is not None and in_force.identity == (
            candidate.path,
            candidate.blob_sha,
            candidate.config_sha,
        ):
            if not self.floor_refuses(name, candidate, None):
                self.effective[name] = candidate
        elif not self.floor_refuses(name, candidate, in_force):
            self._change(name, in_force, candidate)

    def _gone(self, name: str, in_force: InForce | None) -> None:
        """No file at the commit: a removal, which needs what a loosening needs."""
        assert in_force is not None
        removed = (GateChange(ENVIRONMENT_GATE, LOOSENED, "environment removed"),)
        auth = self._authorize(name, in_force, policy_digest(name, None), replaces=in_force)
        if auth.ok:
            del self.in_force[name]
            self._event("policy.removed", name, removed, auth)
            return
        self._kept(
            name,
            in_force,
            f"{in_force.path} is gone at {self.commit[:12]}; the last verified policy "
            f"(from {in_force.commit[:12]}) stays in force until its removal is "
            f"authorized: {auth.missing}",
            digest=policy_digest(name, None),
            loosened=removed,
            **auth.pending_fields(),
        )

    def _unusable(self, name: str, in_force: InForce | None, candidate: DesiredEnvironment) -> None:
        """An invalid file never opens anything: the last verified policy stays."""
        if in_force is None:
            self.effective[name] = candidate  # its problems reject its bundles, as always
            return
        why = "; ".join(p.message for p in candidate.problems) or "no usable policy"
        self._kept(
            name,
            in_force,
            f"{candidate.path} cannot be used at {self.commit[:12]} ({why}); the last "
            f"verified policy (from {in_force.commit[:12]}) stays in force",
        )

    def _change(self, name: str, in_force: InForce | None, candidate: DesiredEnvironment) -> None:
        """A valid policy that differs from the one in force (or a new environment)."""
        changes = compare(in_force.policy if in_force else None, candidate.policy)
        loose = tuple(c for c in changes if c.direction == LOOSENED)
        demand = in_force or _strictest(self.record.in_force)
        if not loose or demand is None:
            how = "applied" if in_force is not None else "adopted"
            self.in_force[name] = _in_force(candidate, self.commit, self.now, how)
            self.effective[name] = candidate
            if changes:
                self._event("policy.applied", name, tuple(changes), None)
            return
        assert candidate.policy is not None
        digest = policy_digest(name, candidate.policy)
        auth = self._authorize(name, demand, digest, replaces=in_force)
        if auth.ok:
            self.in_force[name] = _in_force(
                candidate, self.commit, self.now, "approved", auth.signers, auth.approved_by
            )
            self.effective[name] = candidate
            self._event("policy.applied", name, tuple(changes), auth)
            return
        text = (
            f"{candidate.path} at {self.commit[:12]} loosens {name}: {summary(loose)}; "
            + (
                "the policy in force keeps judging every bundle"
                if in_force
                else "nothing is promoted there"
            )
            + f" until it is authorized: {auth.missing}"
        )
        pending = Pending(
            name,
            ErrorCode.policy_held if in_force else ErrorCode.policy_not_in_force,
            self.commit,
            text,
            digest,
            loose,
            diff=policy_diff(in_force.policy if in_force else None, candidate.policy),
            **auth.pending_fields(),
        )
        if in_force is not None:
            self._keep(name, in_force, pending)
        else:
            self._close(name, candidate, pending)

    # ---------------------------------------------------------------- outcomes

    def floor_refuses(self, name: str, env: DesiredEnvironment, in_force: InForce | None) -> bool:
        """A policy below the controller's floor is refused whole: the one in force stays
        (if it meets the floor), else nothing is promoted there."""
        floor = self.ratchet.floors.get(name)
        below = floor.below(env.policy) if floor is not None and env.policy is not None else []
        if not below:
            return False
        assert floor is not None
        keeps = in_force is not None and not floor.below(in_force.policy)
        pending = Pending(
            name,
            ErrorCode.policy_below_floor,
            self.commit,
            f"{env.path} at {self.commit[:12]} is below the controller's floor for {name} "
            f"({summary(below)}); refused whole"
            + (", the policy in force stays" if keeps else ", nothing is promoted there"),
            policy_digest(name, env.policy),
            tuple(below),
        )
        if keeps and in_force is not None:
            self._keep(name, in_force, pending)
        else:
            self.in_force.pop(name, None)
            self._close(name, env, pending)
        return True

    def _keep(self, name: str, in_force: InForce, pending: Pending) -> None:
        self.effective[name] = in_force.desired()
        self.pending[name] = pending

    def _kept(self, name: str, in_force: InForce, message: str, **found: Any) -> None:
        """The last verified policy stays (``policy_kept``): a removal not yet authorized and
        an unusable file are held the same way, told apart by ``message`` and ``found``
        (the other :class:`Pending` fields)."""
        self._keep(
            name, in_force, Pending(name, ErrorCode.policy_kept, self.commit, message, **found)
        )

    def _close(self, name: str, env: DesiredEnvironment, pending: Pending) -> None:
        problem = Problem(pending.code, pending.message)
        self.effective[name] = replace(env, problems=(problem,), closed=True)
        self.pending[name] = pending

    def _event(
        self,
        event: str,
        name: str,
        changes: tuple[GateChange, ...],
        auth: _Auth | None,
    ) -> None:
        payload: dict[str, Any] = {
            "environment": name,
            "commit": self.commit,
            "loosened": [c.summary for c in changes if c.direction == LOOSENED],
            "tightened": [c.summary for c in changes if c.direction != LOOSENED],
        }
        if auth is not None:
            payload.update(signers=list(auth.signers), approved_by=list(auth.approved_by))
        self.events.append((event, payload))

    def _authorize(
        self,
        name: str,
        demand_by: InForce,
        digest: str,
        *,
        replaces: InForce | None,
    ) -> _Auth:
        """What the policy in force (``demand_by``'s) asks of a promotion, asked of the
        change from ``replaces`` (``None``: a new environment) to ``digest``."""
        demand = demand_by.policy
        subject = policy_subject(name, replaces.digest if replaces else None, digest)
        promotion = demand.promotion
        needs: dict[str, Any] = {
            "signatures": demand.required_signatures,
            "keys": demand.accepted_key_ids,
            "approvals": promotion.min_approvals if promotion.require_human_approval else 0,
            "approvers": list(promotion.approvers),
            "as_for": demand_by.environment,
        }
        raw = self.read_approval(name)
        path = approval_path(name)
        signing = f"{demand.required_signatures} signature(s) of accepted keys in {path}"
        if raw is None:
            return _Auth(False, needs, f"needs {signing} (kneo policy sign), none found")
        try:
            signers = verify_policy_approval(
                raw,
                self.ratchet.keyring,
                now=self.now,
                environment=name,
                policy_digest=digest,
                required_signatures=demand.required_signatures,
                accepted_key_ids=demand.accepted_key_ids,
            )
        except BundleError as exc:
            return _Auth(False, needs, f"needs {signing}: {exc.message}")
        if not promotion.require_human_approval:
            return _Auth(True, needs, signers=signers)
        decided = self.decisions(name, subject)
        if decided.rejected_by:
            who = ", ".join(sorted(decided.rejected_by))
            return _Auth(False, needs, f"rejected by {who}", signers)
        people = tuple(sorted(counted(decided.approved_by, promotion.approvers)))
        if len(people) >= promotion.min_approvals:
            return _Auth(True, needs, signers=signers, approved_by=people)
        who = f" from {', '.join(promotion.approvers)}" if promotion.approvers else ""
        return _Auth(
            False,
            needs,
            f"signed by {', '.join(signers)}; {len(people)} of {promotion.min_approvals} "
            f"approvals{who} (an approval task is open)",
            signers,
            people,
            policy_task_id(name, subject, self.ratchet.project_id),
            subject,
        )

    def outcome(self) -> PolicyOutcome:
        record = PolicyRecord(self.in_force, self.pending)
        outcome = PolicyOutcome(
            record,
            self.effective,
            changed=record.identities() != self.record.identities(),
            events=self.events,
            problems=[Problem(p.code, p.message) for _, p in sorted(self.pending.items())],
        )
        for name, pending in sorted(self.pending.items()):
            before = self.record.pending.get(name)
            if before is None or before.key != pending.key:
                outcome.events.append(pending.held_event())
        for name, before in self.record.pending.items():
            now = self.pending.get(name)
            if before.task and (now is None or now.task != before.task):
                outcome.closed_tasks.append(before.task)
        return outcome


def open_policy_task(tx: Transaction, pending: Pending, *, now: datetime) -> None:
    """Open (once) the inbox task in which the approvers in force decide a loosening: the
    same M-of-N promotion task, whose decisions are recorded under ``policy:<digest>``."""
    assert pending.task is not None and pending.digest is not None and pending.subject
    context = {
        "type": "promotion",
        "policy": True,
        "bundle": POLICY_NAME,
        "environment": pending.environment,
        "digest": pending.digest,
        "subject": pending.subject,
        "commit": pending.commit,
        "changes": [c.to_dict() for c in pending.loosened],
        "approvers": list(pending.needs.get("approvers") or []),
        "min_approvals": int(pending.needs.get("approvals") or 1),
        "signers": list(pending.signers),
        "diff": pending.diff,
    }
    open_approval_task(
        tx,
        pending.task,
        wait_key=f"policy:{pending.environment}",
        step_id="policy",
        question=pending.question(),
        context=context,
        name=POLICY_NAME,
        environment=pending.environment,
        now=now,
    )
