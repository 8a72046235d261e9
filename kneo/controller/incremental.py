"""What an incremental reconcile may skip, and the saved state that says so. Pure.

A reconcile that succeeded saves a :class:`ReconcileState` with the controller status (in
the database, so a restarted process or a new leader continues from it): the commit it
reconciled, a fingerprint of everything else its verdicts depend on, the registry change
number it had seen, and the bundles it must look at again whatever happens.

The next reconcile then plans only a *scope* of bundle names (every environment of each):

* bundles whose files differ between the saved commit and the new one (``git diff-tree``:
  blob ids, nothing read); unchanged files are neither read, parsed nor verified;
* bundles people changed in the registry since (``registry_changes``: drift, suspensions,
  promotion decisions), bundles with a pending promotion (its task may have been answered
  or cancelled), and the saved ``recheck`` set (verdicts that depend on the time, applies
  that failed).

It falls back to a full pass (every file judged, the whole registry read) when the saved
state cannot vouch for the rest: none saved, a different fingerprint (trusted keys,
controller version or state format, source, prune options), a verdict whose key validity
window has ended (``recheck_at``), Git unable to compare the commits, a change under
``environments/`` or to ``.kneo/config.yaml`` (a policy change re-judges every bundle), a
bundle file at a path that is not ``bundles/<name>/<env>.json``, or a scope so large a full
pass costs the same.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kneo.clock import utc_iso
from kneo.controller.bundle_paths import identity_from_path, results_identity
from kneo.controller.model import DesiredState

#: Bumped when what a saved state vouches for changes: old states then force a full pass.
STATE_FORMAT = 1

# Why a pass is full (``stats.full_reason``).
REQUESTED = "requested"
NO_STATE = "no_state"
FINGERPRINT_CHANGED = "fingerprint_changed"
RECHECK_DUE = "recheck_due"
HISTORY_UNKNOWN = "history_unknown"
POLICY_CHANGED = "policy_changed"
PATH_INVALID = "bundle_path_invalid"
SCOPE_TOO_LARGE = "scope_too_large"


@dataclass(frozen=True)
class ReconcileState:
    """What the last successful reconcile vouches for (``details.reconciled`` in status)."""

    commit: str
    fingerprint: str
    #: The registry change number read before that reconcile observed the registry.
    change_seq: int
    #: Bundle files (at valid paths) at ``commit``: the empty-commit guard needs it.
    bundle_count: int
    #: When the earliest verdict expires (a signing key's ``not_after``): then a full pass.
    recheck_at: datetime | None = None
    #: Bundles planned again on every pass until they settle: time-dependent verdicts (a
    #: key not valid yet), keys whose apply failed, prunes held back by the empty-commit
    #: guard.
    recheck: frozenset[str] = field(default_factory=frozenset)

    def to_dict(self) -> dict[str, Any]:
        return {
            "commit": self.commit,
            "fingerprint": self.fingerprint,
            "change_seq": self.change_seq,
            "bundle_count": self.bundle_count,
            "recheck_at": utc_iso(self.recheck_at) if self.recheck_at else None,
            "recheck": sorted(self.recheck),
        }

    @classmethod
    def from_dict(cls, data: object) -> ReconcileState | None:
        """The saved state, or ``None`` when absent or not understood (a full pass)."""
        if not isinstance(data, Mapping):
            return None
        try:
            recheck_at = data.get("recheck_at")
            return cls(
                commit=str(data["commit"]),
                fingerprint=str(data["fingerprint"]),
                change_seq=int(data["change_seq"]),
                bundle_count=int(data["bundle_count"]),
                recheck_at=_parse_time(recheck_at) if recheck_at else None,
                recheck=frozenset(str(n) for n in data.get("recheck") or ()),
            )
        except (KeyError, TypeError, ValueError):
            return None


def _parse_time(text: str) -> datetime:
    value = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Scope:
    """The bundle names an incremental pass plans, and the commit's bundle file count."""

    names: frozenset[str]
    bundle_count: int


def fingerprint(**parts: object) -> str:
    """A digest of everything verdicts depend on besides the files (keys, version, ...)."""
    text = json.dumps({"format": STATE_FORMAT, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def full_reason(state: ReconcileState | None, current: str, now: datetime) -> str | None:
    """Why the saved state cannot be used at all; ``None`` when it can."""
    if state is None:
        return NO_STATE
    if state.fingerprint != current:
        return FINGERPRINT_CHANGED
    if state.recheck_at is not None and now >= state.recheck_at:
        return RECHECK_DUE
    return None


def scope_of(
    state: ReconcileState,
    changes: Sequence[tuple[str, str]] | None,
    also: Iterable[str],
) -> tuple[Scope | None, str | None]:
    """The scope for files ``changes`` (``(status, path)``, ``None``: unknown) plus the
    bundles ``also`` (registry changes, pending promotions); ``(None, reason)``: full pass.
    """
    if changes is None:
        return None, HISTORY_UNKNOWN
    names = set(state.recheck) | set(also)
    count = state.bundle_count
    for status, path in changes:
        if not path.startswith("bundles/"):
            return None, POLICY_CHANGED
        results = results_identity(path)  # an eval results file: its bundle is judged again
        key = identity_from_path(path) or results
        if key is None:
            return None, PATH_INVALID
        names.add(key[0])
        if results is None:
            count += 1 if status == "A" else -1 if status == "D" else 0
    if len(names) > max(64, count // 4):
        return None, SCOPE_TOO_LARGE
    return Scope(frozenset(names), max(count, 0)), None


def next_state(
    previous: ReconcileState | None,
    desired: DesiredState,
    failed: Iterable[str],
    *,
    fingerprint: str,
    change_seq: int,
    now: datetime,
) -> ReconcileState:
    """The state a finished pass saves: ``desired`` judged (all, or its scope), ``failed``
    the bundles whose apply failed."""
    recheck = set(failed)
    expiries: list[datetime] = []
    for revision in desired.revisions.values():
        if revision.recheck_at is None:
            continue
        if revision.recheck_at <= now:
            recheck.add(revision.name)
        else:
            expiries.append(revision.recheck_at)
    if desired.scope is not None and previous is not None:
        recheck |= previous.recheck - desired.scope
        if previous.recheck_at is not None:
            expiries.append(previous.recheck_at)
    count = len(desired.revisions) if desired.bundle_count is None else desired.bundle_count
    return ReconcileState(
        commit=desired.commit,
        fingerprint=fingerprint,
        change_seq=change_seq,
        bundle_count=count,
        recheck_at=min(expiries, default=None),
        recheck=frozenset(recheck),
    )
