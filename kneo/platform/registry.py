"""Read views of the GitOps registry and of promotion tasks, shared by the HTTP API and the
reviewer console (and the spec diff by the CLI), so every reader shows the same thing.

Read-only: the controller writes the registry (:mod:`kneo.controller.apply`) and a promotion
decision goes through ``PlatformManager.resume`` like any other.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from dataclasses import asdict
from datetime import datetime
from typing import TYPE_CHECKING, Any

from kneo.clock import utc_iso
from kneo.controller.operations import pin_view
from kneo.controller.promotion import count_approvals
from kneo.errors import NotFound
from kneo.redaction import redact_mapping
from kneo.store import ContinuationRecord
from kneo.store.records import BundleRevision

if TYPE_CHECKING:
    from kneo.store.api import Store
    from kneo.store.queries import RegistryQuery
    from kneo.store.registry.reads import ApprovalReads

#: The condition types the controller sets, in the order people read them.
CONDITION_TYPES = ("Ready", "Verified", "Promoted")


def _json_times(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: utc_iso(v) if isinstance(v, datetime) else v for k, v in data.items()}


def revision_view(revision: BundleRevision, *, include_spec: bool = False) -> dict[str, Any]:
    """One registry revision as JSON (its spec only when asked: specs are large)."""
    data = _json_times(asdict(revision))
    if not include_spec:
        data.pop("spec", None)
    return data


def registry_revisions(store: Store, query: RegistryQuery) -> dict[str, Any]:
    """One page of bundle revisions (``GET /v1/registry/bundles``), keyset-paged like the
    other lists."""
    page = store.registry.list_registry(query)
    ready = _ready(store, {r.bundle_name for r in page.items if r.status == "active"})
    items = [
        {**revision_view(r), "ready": ready.get((r.bundle_name, r.environment))}
        if r.status == "active"
        else {**revision_view(r), "ready": None}
        for r in page.items
    ]
    return {
        "revisions": items,
        "count": len(items),
        "total": page.total,
        "total_capped": page.total_capped,
        "limit": query.limit,
        "next_cursor": page.next_cursor,
    }


def _ready(store: Store, names: set[str]) -> dict[tuple[str, str], str]:
    """The Ready condition's status of these bundles in each environment (one query)."""
    if not names:
        return {}
    heads = store.registry.list_conditions(names=names, heads=True)
    return {(bundle, env): status for bundle, env, kind, status, _, _ in heads if kind == "Ready"}


def revision_diff(
    store: Store, bundle: str, environment: str, from_revision: int, to_revision: int
) -> dict[str, Any]:
    """``kneo registry diff`` and ``GET .../diff``: a unified diff of two revisions' specs,
    and their digest, commit and status where they differ."""
    old = store.registry.get_revision(bundle, environment, from_revision)
    new = store.registry.get_revision(bundle, environment, to_revision)
    changed = {
        key: {"from": getattr(old, key), "to": getattr(new, key)}
        for key in ("digest", "commit", "status")
        if getattr(old, key) != getattr(new, key)
    }
    return {
        "bundle": bundle,
        "environment": environment,
        "from": from_revision,
        "to": to_revision,
        "changed": changed,
        "spec_diff": spec_diff(old, new),
    }


def bundle_view(
    store: Store, bundle: str, environment: str, *, include_spec: bool = False
) -> dict[str, Any]:
    """One bundle in one environment: active revision, history, conditions, suspension
    (``GET /v1/registry/bundles/{bundle}/{environment}``)."""
    revisions = store.registry.list_revisions(bundle, environment)[::-1]  # newest first
    if not revisions:
        raise NotFound(f"bundle {bundle!r} has no revision in {environment!r}", resource="bundle")
    active = next((r for r in revisions if r.status == "active"), None)
    holds = store.registry.holds(environment, names=[bundle])
    return {
        "bundle": bundle,
        "environment": environment,
        "active": revision_view(active, include_spec=include_spec) if active else None,
        "revisions": [revision_view(r) for r in revisions],
        "conditions": [
            _json_times(asdict(c)) for c in store.registry.list_conditions(bundle, environment)
        ],
        "suspended": (bundle, environment) in holds.suspensions,
        "pin": pin_view(holds.pins.get((bundle, environment))),
    }


def registry_overview(store: Store) -> dict[str, Any]:
    """Every (bundle, environment) the registry knows, with its active and pending revision
    heads, conditions, suspension and pin, in five queries whatever the registry's size."""
    cells: dict[tuple[str, str], dict[str, Any]] = {}

    def cell(bundle: str, env: str) -> dict[str, Any]:
        return cells.setdefault(
            (bundle, env),
            {
                "bundle": bundle,
                "environment": env,
                "active": None,
                "pending": None,
                "conditions": {},
                "suspended": None,
                "pin": None,
            },
        )

    for name, env, number, digest, status, commit, _ in store.registry.list_revisions(heads=True):
        if status in ("active", "pending_approval"):
            key = "active" if status == "active" else "pending"
            cell(name, env)[key] = {"revision": number, "digest": digest, "commit": commit}
        else:
            cell(name, env)
    for c in store.registry.list_conditions():
        cell(c.bundle_name, c.environment)["conditions"][c.type] = {
            "status": c.status,
            "reason": c.reason,
            "message": c.message,
            "last_transition_time": utc_iso(c.last_transition_time),
        }
    holds = store.registry.holds()
    for s in holds.suspensions.values():
        cell(s.bundle_name, s.environment)["suspended"] = {
            "reason": s.reason,
            "by": s.suspended_by,
            "since": utc_iso(s.created_at),
        }
    for p in holds.pins.values():
        cell(p.bundle_name, p.environment)["pin"] = pin_view(p)
    environments = sorted({env for _, env in cells})
    bundles = sorted({name for name, _ in cells})
    return {
        "environments": environments,
        "bundles": bundles,
        "cells": [cells[k] for k in sorted(cells)],
    }


def spec_diff(old: BundleRevision | None, new: BundleRevision) -> str:
    """A unified diff of two revisions' specs (pretty, sorted JSON); ``old`` ``None``: all
    added."""

    def lines(spec: Mapping[str, Any]) -> list[str]:
        return json.dumps(spec, indent=2, sort_keys=True).splitlines(keepends=True)

    where = f"{new.bundle_name}@{new.environment}"
    before = f"{where} r{old.revision}" if old is not None else "(no active revision)"
    return "".join(
        difflib.unified_diff(
            lines(old.spec) if old is not None else [],
            lines(new.spec),
            before,
            f"{where} r{new.revision}",
        )
    )


# --------------------------------------------------------------------------- promotions


def promotion_tally(
    store: ApprovalReads, task: ContinuationRecord, *, show_personal: bool = False
) -> dict[str, Any]:
    """A promotion task's approvals so far (M of N, by whom, when, with what comment),
    redacted for the reader (``show_personal``: a decider, :mod:`kneo.redaction`)."""
    ctx = task.context
    subject = ctx.get("subject") or ctx["digest"]  # a rollback's approvals are its own
    decisions = store.list_promotion_approvals(ctx["bundle"], ctx["environment"], subject)
    approvers = list(ctx.get("approvers") or [])
    approved = count_approvals(store, ctx["bundle"], ctx["environment"], subject, approvers)
    tally = {
        "bundle": ctx["bundle"],
        "environment": ctx["environment"],
        "digest": ctx["digest"],
        "revision": ctx.get("revision"),
        "upstream": ctx.get("upstream"),
        "rollback": ctx.get("type") == "rollback",
        "override": ctx.get("override"),
        "approvers": approvers,
        "required": int(ctx.get("min_approvals") or 1),
        "approved": approved,
        "outcome": ctx.get("outcome"),
        "decisions": [
            {
                "approver": a.approver,
                "decision": a.decision,
                "comment": a.comment,
                "decided_at": utc_iso(a.created_at),
            }
            for a in decisions
        ],
    }
    return redact_mapping(tally, show_personal=show_personal)


def promotion_view(
    store: Store, task: ContinuationRecord, *, show_personal: bool = False
) -> dict[str, Any]:
    """What a person approving a promotion judges: the revision (digest, commit, signer key
    ids), the spec diff against the active revision, the upstream environment's state and
    the approvals so far."""
    tally = promotion_tally(
        store.registry, task, show_personal=True
    )  # redacted below, for the reader
    bundle, env = tally["bundle"], tally["environment"]
    if task.context.get("policy"):  # a policy change (kneo.controller.ratchet): no revision
        ctx = task.context
        change = {k: ctx.get(k) for k in ("commit", "signers", "changes", "diff")}
        view = {**tally, "policy": change, "revision_record": None, "active": None}
        return redact_mapping(
            {**view, "spec_diff": "", "upstream_state": None}, show_personal=show_personal
        )
    same = store.registry.list_revisions(bundle, env, digest=tally["digest"])
    revision = same[-1] if same else None  # the newest with the digest
    active = store.registry.get_active(bundle, env)
    upstream = None
    if tally["upstream"]:
        up = store.registry.get_active(bundle, tally["upstream"])
        upstream = {
            "environment": tally["upstream"],
            "active": revision_view(up) if up else None,
            "same_digest": up is not None and up.digest == tally["digest"],
            "conditions": [
                _json_times(asdict(c))
                for c in store.registry.list_conditions(bundle, tally["upstream"])
            ],
        }
    view = {
        **tally,
        "revision_record": revision_view(revision) if revision else None,
        "active": revision_view(active) if active else None,
        "spec_diff": spec_diff(active, revision) if revision is not None else "",
        "upstream_state": upstream,
    }
    return redact_mapping(view, show_personal=show_personal)
