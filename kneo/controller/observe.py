"""Observe the registry: the planner's :class:`ObservedState`, read at the start of a pass.

:func:`observe` reads revisions, suspensions, pins, blocked digests, people's decisions,
open approval tasks and the stored conditions (so the applier rewrites only those that
change); an incremental pass reads only the bundles of its scope.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kneo.controller import promotion, prune_gate
from kneo.controller.model import (
    Approvals,
    BundleKey,
    ObservedEntry,
    ObservedState,
    PinRef,
    RevisionRef,
)

if TYPE_CHECKING:
    from kneo.store.api import Store
    from kneo.store.registry.reads import RegistryFacet

#: Statuses of a revision that was in force (the controller applied it).
APPLIED_STATUSES = ("active", "inactive", "pruned")


@dataclass
class Snapshot:
    """The registry as read at the start of a reconcile."""

    observed: ObservedState
    conditions: dict[tuple[str, str, str], tuple[str, str, str]] = field(default_factory=dict)
    #: Ids of every pending approval task (promotion, freeze override, rollback) when a
    #: full pass read them all; ``None``: not read (the applier asks the store).
    open_tasks: frozenset[str] | None = None


@dataclass
class _Heads:
    """Each key's latest revisions by what they are: active, last applied, waiting for
    approval, and the fingerprints rejected; and where each digest first came in force."""

    active: dict[BundleKey, RevisionRef] = field(default_factory=dict)
    applied: dict[BundleKey, RevisionRef] = field(default_factory=dict)
    pending: dict[BundleKey, RevisionRef] = field(default_factory=dict)
    rejected: dict[BundleKey, set[str]] = field(default_factory=lambda: defaultdict(set))
    first_in_force: dict[BundleKey, dict[str, int]] = field(
        default_factory=lambda: defaultdict(dict)
    )

    def keys(self) -> set[BundleKey]:
        return set(self.active) | set(self.applied) | set(self.pending) | set(self.rejected)


def observe(
    store: Store,
    gate: promotion.PromotionGate,
    names: Collection[str] | None = None,
    desired: Collection[BundleKey] | None = None,
) -> Snapshot:
    """Read revisions, suspensions, approvals, open promotion tasks and conditions; of the
    bundles ``names`` only, if given (an incremental reconcile's scope). Decisions on
    removals are read only when an active revision has no file (``desired``: the keys Git
    has; ``None``: read them)."""
    registry = store.registry
    heads = _revision_heads(registry, names)
    holds = registry.holds(names=names)
    suspended = set(holds.suspensions)
    pins = {
        key: PinRef(p.revision, p.digest, p.pinned_by, p.reason) for key, p in holds.pins.items()
    }
    blocked = {
        b.digest: f"blocked by {b.blocked_by or 'someone'}: {b.reason}"
        for b in holds.blocked.values()
    }
    if names is None:  # all of them (one read when none is pending): see Snapshot.open_tasks
        open_tasks = gate.open_tasks(store)
    else:
        wanted = [gate.task_id(*k, p.digest) for k, p in heads.pending.items()]
        open_tasks = gate.open_tasks(store, wanted) if heads.pending else set()
    entries: dict[BundleKey, ObservedEntry] = {}
    for key in heads.keys() | suspended | set(pins):
        p = heads.pending.get(key)
        entries[key] = ObservedEntry(
            active=heads.active.get(key),
            applied=heads.applied.get(key),
            pending=p,
            rejected_fingerprints=frozenset(heads.rejected.get(key, ())),
            suspended=key in suspended,
            approvals=_promotion_approvals(registry, key, p),
            task_open=p is not None and gate.task_id(key[0], key[1], p.digest) in open_tasks,
            pin=pins.get(key),
            first_in_force=heads.first_in_force.get(key, {}),
        )
    overrides = {
        (n, e, subject.removeprefix(promotion.OVERRIDE_PREFIX)): decided
        for (n, e, subject), decided in _decisions(
            registry, promotion.OVERRIDE_PREFIX, names
        ).items()
    }
    conditions = {
        (n, e, ty): (st, re, msg)
        for n, e, ty, st, re, msg in registry.list_conditions(names=names, heads=True)
    }
    removed = desired is None or any(key not in desired for key in heads.active)
    prunes = _decisions(registry, prune_gate.PRUNE_PREFIX, names) if removed else {}
    return Snapshot(
        ObservedState(entries, blocked, overrides, prunes),
        conditions,
        frozenset(open_tasks) if names is None else None,
    )


def _revision_heads(registry: RegistryFacet, names: Collection[str] | None) -> _Heads:
    """The registry's revision heads (of the bundles ``names`` only, if given), by kind."""
    heads = _Heads()
    for head in registry.list_revisions(names=names, heads=True):
        name, env, number, digest, status, commit, diagnostics = head
        key = (name, env)
        ref = RevisionRef(number, digest, status, commit)
        if status == "active":
            heads.active[key] = ref
        if status in APPLIED_STATUSES:
            heads.applied[key] = ref
            # heads come in revision order
            heads.first_in_force[key].setdefault(digest, number)
        elif status == "pending_approval":
            heads.pending[key] = ref
        elif status == "rejected":
            for d in diagnostics or ():
                if d.get("fingerprint"):
                    heads.rejected[key].add(str(d["fingerprint"]))
    return heads


def _promotion_approvals(
    registry: RegistryFacet, key: BundleKey, pending: RevisionRef | None
) -> Approvals:
    """Decisions on promoting the pending revision of ``key`` (none without one)."""
    if pending is None:
        return Approvals()
    decisions = registry.list_promotion_approvals(key[0], key[1], pending.digest)
    return Approvals(
        frozenset(a.approver for a in decisions if a.decision == "approved"),
        frozenset(a.approver for a in decisions if a.decision == "rejected"),
    )


def _decisions(
    registry: RegistryFacet, prefix: str, names: Collection[str] | None
) -> dict[tuple[str, str, str], Approvals]:
    """Decisions recorded under subjects starting with ``prefix`` (freeze overrides,
    removals), by ``(bundle, environment, subject)``."""
    out: dict[tuple[str, str, str], Approvals] = {}
    for a in registry.list_promotion_approvals(prefix=prefix, names=names):
        key = (a.bundle_name, a.environment, a.digest)
        had = out.get(key, Approvals())
        out[key] = (
            Approvals(had.approved_by | {a.approver}, had.rejected_by)
            if a.decision == "approved"
            else Approvals(had.approved_by, had.rejected_by | {a.approver})
        )
    return out
