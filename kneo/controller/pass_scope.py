"""The scope step of a reconcile pass: which bundles it must plan, from the saved state.

The rules are :mod:`kneo.controller.incremental`'s (pure); this step reads what they need:
the state the last successful pass saved in the controller status, the registry changes
since, the bundles with a pending promotion and the files Git changed between the commits.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from kneo.controller import incremental
from kneo.controller.source import Source

if TYPE_CHECKING:
    from kneo.store import ControllerStatus
    from kneo.store.api import Store


def saved_state(previous: ControllerStatus | None) -> incremental.ReconcileState | None:
    """The reconcile state the last successful pass saved (``None``: none, or unreadable)."""
    details = previous.details if previous is not None else {}
    return incremental.ReconcileState.from_dict(details.get("reconciled"))


def pass_scope(
    store: Store,
    source: Source,
    previous: ControllerStatus | None,
    commit: str,
    stats: dict[str, Any],
    *,
    full: bool,
    fingerprint: str,
    now: datetime,
) -> tuple[incremental.Scope | None, int]:
    """The bundles this pass must plan (``None``: all of them), and the registry change
    number to save; ``stats`` learns which and why (see :mod:`kneo.controller.incremental`).
    A dry run (``previous`` None) is always a full pass; ``fingerprint`` is what verdicts
    depend on besides the files now."""
    if previous is None:
        stats.update(mode="full", full_reason="dry_run")
        return None, 0
    saved = saved_state(previous)
    reason = incremental.REQUESTED if full else incremental.full_reason(saved, fingerprint, now)
    change_seq, changed = store.registry.registry_changes_since(
        saved.change_seq if saved is not None and reason is None else None
    )
    scope = None
    if saved is not None and reason is None:
        files = [] if saved.commit == commit else source.changed_paths(saved.commit, commit)
        pending = store.registry.list_revisions(status="pending_approval", heads=True)
        also = changed | {head.bundle_name for head in pending}
        scope, reason = incremental.scope_of(saved, files, also)
    if scope is None:
        stats.update(mode="full", full_reason=reason)
    else:
        stats.update(mode="incremental", scope=len(scope.names))
    return scope, change_seq
