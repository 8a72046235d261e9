"""What a ``PUT /v1/policies/environment/{env}`` would change, said before it is made.

A stored policy replaces the policy in force for its environment (the project config's,
made stricter by ``environments/<env>.yaml``) for every spec and bundle run there. So the
preview compares the proposed policy with the one in force now, gate by gate, with the same
rules the GitOps controller judges a policy commit by (:func:`kneo.policy.ratchet.compare`):
each change is ``loosened`` or ``tightened``, and a change that loosens anything is one the
controller would hold until the policy in force approves it (``needs_policy_approval``).

Pure: the policy in force and where it comes from are the caller's to read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from kneo.policy.environment import EnvironmentPolicy
from kneo.policy.ratchet import LOOSENED, TIGHTENED, GateChange, compare
from kneo.spec.project_blocks import PolicyEnforcement

#: Where the policy in force comes from: stored through the API, the project (its config
#: and environment file), or nowhere (nothing is enforced).
Source = Literal["stored", "project", "none"]


@dataclass(frozen=True)
class PolicyPreview:
    """The proposed policy against the one in force, and every gate that would move."""

    environment: str
    source: Source
    current: PolicyEnforcement | None
    proposed: PolicyEnforcement
    changes: tuple[GateChange, ...]

    @property
    def loosened(self) -> list[GateChange]:
        return [c for c in self.changes if c.direction == LOOSENED]

    @property
    def tightened(self) -> list[GateChange]:
        return [c for c in self.changes if c.direction == TIGHTENED]

    def diff(self) -> dict[str, dict[str, Any]]:
        """Each field whose value differs: ``{field: {"from": old, "to": new}}`` (an absent
        policy's fields are ``None``)."""
        old = self.current.model_dump(mode="json") if self.current else {}
        new = self.proposed.model_dump(mode="json")
        return {
            name: {"from": old.get(name), "to": value}
            for name, value in new.items()
            if old.get(name) != value
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "current_source": self.source,
            "current_policy": self.current.model_dump(mode="json") if self.current else None,
            "policy": self.proposed.model_dump(mode="json"),
            "changed": bool(self.diff()),
            "diff": self.diff(),
            "changes": [c.to_dict() for c in self.changes],
            "loosened": [c.to_dict() for c in self.loosened],
            "tightened": [c.to_dict() for c in self.tightened],
            "needs_policy_approval": bool(self.loosened),
        }


def _as_environment(environment: str, policy: PolicyEnforcement | None) -> EnvironmentPolicy:
    return EnvironmentPolicy(environment=environment, policy_enforcement=policy)


def preview(
    environment: str,
    proposed: PolicyEnforcement,
    *,
    stored: PolicyEnforcement | None,
    project: PolicyEnforcement | None,
) -> PolicyPreview:
    """Compare ``proposed`` with the policy in force in ``environment``: ``stored`` (put
    through the API) when there is one, else ``project``'s."""
    current = stored if stored is not None else project
    source: Source = "stored" if stored is not None else "project" if project else "none"
    changes = compare(_as_environment(environment, current), _as_environment(environment, proposed))
    return PolicyPreview(environment, source, current, proposed, tuple(changes))


__all__ = ["PolicyPreview", "Source", "preview"]
