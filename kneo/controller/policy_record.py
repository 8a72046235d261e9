"""The policy in force as the store keeps it, per controller (:func:`record_key`).

Each environment's :class:`InForce` policy (where it came from, who let it in) and the
changes that wait (:class:`Pending`: held, kept, below a floor, not in force yet) make the
:class:`PolicyRecord`; one pass's decision about it (:mod:`kneo.controller.ratchet`) is a
:class:`PolicyOutcome`, whose :meth:`~PolicyOutcome.status` is ``policy`` in the controller
status.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from kneo.controller.model import DesiredEnvironment, Problem
from kneo.errors import ErrorCode
from kneo.policy.environment import EnvironmentPolicy
from kneo.policy.ratchet import GateChange, summary

#: Bumped when the stored record's shape changes.
RECORD_FORMAT = 1


def record_key(controller: str) -> str:
    """Store metadata key of one controller's policy in force."""
    return f"controller.policy:{controller}"


@dataclass(frozen=True)
class InForce:
    """One environment's policy in force: where it came from, and who let it in."""

    environment: str
    path: str
    blob_sha: str
    config_sha: str | None
    policy: EnvironmentPolicy
    digest: str
    commit: str
    since: str
    #: ``adopted`` (first pass), ``applied`` (loosened nothing), ``approved`` (authorized).
    how: str
    signers: tuple[str, ...] = ()
    approved_by: tuple[str, ...] = ()

    @property
    def identity(self) -> tuple[str, str, str | None]:
        return (self.path, self.blob_sha, self.config_sha)

    def desired(self) -> DesiredEnvironment:
        return DesiredEnvironment.of(
            self.environment, self.path, self.blob_sha, self.policy, self.config_sha
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "blob_sha": self.blob_sha,
            "config_sha": self.config_sha,
            "policy": self.policy.model_dump(mode="json", by_alias=True, exclude_unset=True),
            "digest": self.digest,
            "commit": self.commit,
            "since": self.since,
            "how": self.how,
            "signers": list(self.signers),
            "approved_by": list(self.approved_by),
        }

    @classmethod
    def from_dict(cls, environment: str, data: Mapping[str, Any]) -> InForce:
        return cls(
            environment,
            str(data["path"]),
            str(data["blob_sha"]),
            data.get("config_sha"),
            EnvironmentPolicy.model_validate(data["policy"]),
            str(data["digest"]),
            str(data["commit"]),
            str(data.get("since") or ""),
            str(data.get("how") or "adopted"),
            tuple(data.get("signers") or ()),
            tuple(data.get("approved_by") or ()),
        )


@dataclass(frozen=True)
class Pending:
    """A policy change of one environment that has not taken effect, and why."""

    environment: str
    #: ``policy_held``, ``policy_kept``, ``policy_below_floor`` or ``policy_not_in_force``.
    code: str
    commit: str
    message: str
    #: The policy the commit asks for (by digest), ``None`` when it has none that is usable.
    digest: str | None = None
    loosened: tuple[GateChange, ...] = ()
    #: What authorizes it: signatures, keys, approvals, approvers (of the policy in force).
    needs: Mapping[str, Any] = field(default_factory=dict)
    signers: tuple[str, ...] = ()
    approved_by: tuple[str, ...] = ()
    #: The approval task to open (the signatures are there, people must decide).
    task: str | None = None
    #: The change as a unified diff of the two policies (what the approvers read).
    diff: str = ""
    #: What the approvers' decisions are recorded under
    #: (:func:`kneo.controller.ratchet.policy_subject`).
    subject: str | None = None

    @property
    def key(self) -> tuple[str, str | None]:
        """What a new audit event is written for: a new reason or another policy."""
        return (self.code, self.digest)

    def question(self) -> str:
        return f"Loosen {self.environment}: {summary(self.loosened)}?"

    def held_event(self) -> tuple[str, dict[str, Any]]:
        """The audit event saying this change waits (new reason or new policy only)."""
        return _HELD[self.code].event, {
            "environment": self.environment,
            "commit": self.commit,
            "code": self.code,
            "digest": self.digest,
            "loosened": [c.summary for c in self.loosened],
            "gates": sorted({c.gate for c in self.loosened}),
            "needs": dict(self.needs),
            "message": self.message,
            "task": self.task,  # the approvers' inbox task, if it needs any: its notification's
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "commit": self.commit,
            "message": self.message,
            "digest": self.digest,
            "loosened": [c.to_dict() for c in self.loosened],
            "needs": dict(self.needs),
            "signers": list(self.signers),
            "approved_by": list(self.approved_by),
            "task": self.task,
            "diff": self.diff,
            "subject": self.subject,
        }

    @classmethod
    def from_dict(cls, environment: str, data: Mapping[str, Any]) -> Pending:
        return cls(
            environment,
            str(data["code"]),
            str(data["commit"]),
            str(data.get("message") or ""),
            data.get("digest"),
            tuple(GateChange.from_dict(c) for c in data.get("loosened") or ()),
            dict(data.get("needs") or {}),
            tuple(data.get("signers") or ()),
            tuple(data.get("approved_by") or ()),
            data.get("task"),
            str(data.get("diff") or ""),
            data.get("subject"),
        )


@dataclass(frozen=True)
class PolicyRecord:
    """What the store keeps: each environment's policy in force, and the changes waiting."""

    in_force: Mapping[str, InForce] = field(default_factory=dict)
    pending: Mapping[str, Pending] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": RECORD_FORMAT,
            "in_force": {n: f.to_dict() for n, f in sorted(self.in_force.items())},
            "pending": {n: p.to_dict() for n, p in sorted(self.pending.items())},
        }

    @classmethod
    def from_dict(cls, data: object) -> PolicyRecord | None:
        """The stored record; ``None`` when nothing was ever stored."""
        if not isinstance(data, Mapping) or data.get("format") != RECORD_FORMAT:
            return None
        return cls(
            {n: InForce.from_dict(n, f) for n, f in (data.get("in_force") or {}).items()},
            {n: Pending.from_dict(n, p) for n, p in (data.get("pending") or {}).items()},
        )

    def identities(self) -> dict[str, tuple[str, str, str | None]]:
        return {n: f.identity for n, f in self.in_force.items()}


@dataclass
class PolicyOutcome:
    """One pass's decision: the environments bundles are judged by, what to store, what to
    audit, and the problems to report."""

    record: PolicyRecord
    environments: dict[str, DesiredEnvironment]
    #: The policies in force differ from the stored ones (every bundle is judged again).
    changed: bool
    #: ``(event type, payload)`` audit events to write with the record.
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    #: Approval tasks of changes no longer waiting (superseded, applied): closed.
    closed_tasks: list[str] = field(default_factory=list)

    def status(self) -> dict[str, Any]:
        """``policy`` in the controller status: per environment, a condition and what waits."""
        out: dict[str, Any] = {}
        for name in sorted(set(self.record.in_force) | set(self.record.pending)):
            in_force = self.record.in_force.get(name)
            pending = self.record.pending.get(name)
            entry: dict[str, Any] = {
                "state": _HELD[pending.code].state if pending else "in_force",
                "in_force": None
                if in_force is None
                else {"commit": in_force.commit, "since": in_force.since, "how": in_force.how},
            }
            if pending is not None:
                entry.update(pending.to_dict())
            entry["condition"] = _condition(in_force, pending)
            out[name] = entry
        return out


class _Held(NamedTuple):
    """How a held policy shows: its state in the status, its condition's reason, its event."""

    state: str
    reason: str
    event: str


_HELD = {
    ErrorCode.policy_held: _Held("held", "LoosenedHeld", "policy.held"),
    ErrorCode.policy_kept: _Held("kept", "LastVerifiedKept", "policy.kept"),
    ErrorCode.policy_below_floor: _Held("below_floor", "BelowFloor", "policy.below_floor"),
    ErrorCode.policy_not_in_force: _Held("not_in_force", "NotInForce", "policy.held"),
}


def _condition(in_force: InForce | None, pending: Pending | None) -> dict[str, str]:
    if pending is None and in_force is not None:
        return {
            "type": "PolicyInForce",
            "status": "True",
            "reason": "InForce",
            "message": f"{in_force.path} at {in_force.commit[:12]} ({in_force.how})",
        }
    assert pending is not None
    return {
        "type": "PolicyInForce",
        "status": "False",
        "reason": _HELD[pending.code].reason,
        "message": pending.message,
    }
