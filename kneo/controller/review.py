"""What merging a pull request would do: ``kneo controller plan --base REF --head REF``.

The head commit's desired state is judged exactly as a reconcile would (signatures, policy,
environment files, today's blocks and freeze windows) and planned against what is active:
the registry when this command can read one that holds revisions, otherwise what the base
commit would have made active (a CI job usually has no registry). Only bundles whose file
or environment file differs between base and head are reported, per environment, upstream
environments first, each with the spec diff against what is active, the verdict, the gate
that refuses or holds it, and who must approve. Policy changes come first: each
environment whose policy the head changes, the gates it loosens and tightens, and what it
needs before it takes effect (:mod:`kneo.controller.ratchet`, judged against the policy in
force: the registry's when the store holds one, else the base commit's); the head's bundles
are judged by the policy that would be in force. :func:`render_markdown` is the
pull-request comment the spec-repo workflow posts; ``refused`` non-zero (a bundle refused or
rejected, or a policy change that would be held) makes the command exit 1.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from kneo.bundle.policy_approval import approval_path
from kneo.controller.model import (
    Action,
    ActionKind,
    Approvals,
    DesiredRevision,
    DesiredState,
    ObservedEntry,
    ObservedState,
    PlanOptions,
    RevisionRef,
)
from kneo.controller.observe import observe
from kneo.controller.plan_actions import short
from kneo.controller.planner import environment_order, plan
from kneo.controller.policy_record import PolicyOutcome, PolicyRecord, record_key
from kneo.controller.promotion import PromotionGate
from kneo.controller.prune_gate import PRUNE_HELD, PRUNE_REFUSED
from kneo.controller.ratchet import POLICY_NAME, PolicyRatchet
from kneo.controller.rollout_plan import rollout_steps
from kneo.policy.ratchet import TIGHTENED, compare
from kneo.projects import DEFAULT_PROJECT_ID

if TYPE_CHECKING:
    from kneo.controller.loader import DesiredStateLoader
    from kneo.controller.model import DesiredEnvironment
    from kneo.controller.source import GitSource, TreeFile
    from kneo.store.api import Store

#: The first line of the comment: the workflow finds its own comment by it, to update it.
MARKER = "<!-- kneo-plan -->"

#: Outcomes that mean "this merge would not go through as asked" (the exit code).
REFUSING = (ActionKind.REJECT, ActionKind.REFUSE)


def review(
    loader: DesiredStateLoader,
    source: GitSource,
    store: Store | None,
    *,
    base: str,
    head: str,
    now: datetime,
    prune: bool = True,
    ratchet: PolicyRatchet | None = None,
    controller: str = "default",
) -> dict[str, Any]:
    """The plan of merging ``head`` onto ``base`` (refs), as JSON-ready data."""
    base_commit, head_commit = source.resolve(base), source.resolve(head)
    ratchet = ratchet or PolicyRatchet(loader.keyring)
    before = loader.load(source, base_commit)
    stored = _stored_record(store, controller)
    record = stored or ratchet.decide(
        None, before.environments, commit=base_commit, now=now,
        read_approval=lambda _: None, decisions=_no_decisions,
    ).record  # fmt: skip
    policy = _PolicyStep(ratchet, record, source, head_commit, now, store)
    after = loader.load(source, head_commit, policy=policy)
    heads = list(store.registry.list_revisions(heads=True)) if store is not None else []
    if store is not None and heads:
        observed, against = observe(store, PromotionGate(_project_id(store))).observed, "registry"
    else:
        observed, against = _as_if_applied(before), "base"
    changed = _changed_keys(before, after)
    actions = [
        a
        for a in plan(after, observed, PlanOptions(prune=prune, now=now))
        if a.key in changed and a.kind is not ActionKind.DRIFT_REVERT
    ]
    depth = environment_order(after.environments)
    environments: dict[str, list[dict[str, Any]]] = {}
    for action in actions:
        item = _item(action, after, before, observed.get(action.key), store if heads else None)
        environments.setdefault(action.environment, []).append(item)
    policies = policy.changes()
    # a removal held for the approvers waits for people: not a refusal
    refused = sum(1 for a in actions if a.kind in REFUSING and a.reason != PRUNE_HELD)
    refused += sum(1 for p in policies if p["state"] != "applies")
    return {
        "base": base_commit,
        "head": head_commit,
        "against": against,
        "policy_against": "registry" if stored is not None else "base",
        "refused": refused,
        "changes": len(actions) + len(policies),
        "policies": policies,
        "problems": [p.to_dict() for p in after.problems],
        "environments": [
            {"environment": env, "bundles": items}
            for env, items in sorted(environments.items(), key=lambda e: (depth.get(e[0], 0), e[0]))
        ],
    }


def _no_decisions(_environment: str, _subject: str) -> Approvals:
    return Approvals()


def _stored_record(store: Store | None, controller: str) -> PolicyRecord | None:
    """The policy in force the store keeps for ``controller``, if it can be read."""
    reader = getattr(store, "get_metadata", None)
    return PolicyRecord.from_dict(reader(record_key(controller))) if reader else None


class _PolicyStep:
    """The loader's policy hook for the head commit: the ratchet's decision, kept with the
    commit's own environments so that every change can be listed."""

    def __init__(
        self,
        ratchet: PolicyRatchet,
        record: PolicyRecord,
        source: GitSource,
        commit: str,
        now: datetime,
        store: Store | None,
    ) -> None:
        self.ratchet, self.record, self.source = ratchet, record, source
        self.commit, self.now, self.store = commit, now, store
        self.candidates: dict[str, DesiredEnvironment] = {}
        self.outcome: PolicyOutcome | None = None

    def __call__(
        self, candidates: dict[str, DesiredEnvironment], files: Mapping[str, TreeFile]
    ) -> tuple[dict[str, DesiredEnvironment], bool]:
        def read_approval(environment: str) -> bytes | None:
            found = files.get(approval_path(environment))
            return None if found is None else self.source.read_blob(found.blob_sha)

        self.candidates = candidates
        self.outcome = self.ratchet.decide(
            self.record,
            candidates,
            commit=self.commit,
            now=self.now,
            read_approval=read_approval,
            decisions=self._decisions,
        )
        return self.outcome.environments, self.outcome.changed

    def _decisions(self, environment: str, subject: str) -> Approvals:
        if self.store is None:
            return Approvals()
        decided = self.store.registry.list_promotion_approvals(POLICY_NAME, environment, subject)
        return Approvals(
            frozenset(a.approver for a in decided if a.decision == "approved"),
            frozenset(a.approver for a in decided if a.decision == "rejected"),
        )

    def changes(self) -> list[dict[str, Any]]:
        """Each environment whose policy the head changes against the one in force: the
        gates it loosens and tightens, and whether it applies or what it waits for."""
        assert self.outcome is not None
        out = []
        for name in sorted(set(self.record.in_force) | set(self.candidates)):
            in_force = self.record.in_force.get(name)
            candidate = self.candidates.get(name)
            pending = self.outcome.record.pending.get(name)
            new = candidate.policy if candidate is not None else None
            changes = (
                []
                if candidate is not None and new is None
                else compare(in_force.policy if in_force else None, new)
            )
            if not changes and pending is None:
                continue
            out.append(
                {
                    "environment": name,
                    "state": "applies" if pending is None else pending.code.removeprefix("policy_"),
                    "loosened": [c.summary for c in changes if c.direction != TIGHTENED],
                    "tightened": [c.summary for c in changes if c.direction == TIGHTENED],
                    "needs": dict(pending.needs) if pending else {},
                    "message": pending.message if pending else "takes effect at once"
                    + (" (signed and approved as the policy in force demands)"
                       if any(c.direction != TIGHTENED for c in changes) else ""),
                }
            )  # fmt: skip
        return out


def _as_if_applied(state: DesiredState) -> ObservedState:
    """The registry the base commit would leave: each verified bundle active."""
    return ObservedState(
        {
            key: ObservedEntry(active=ref, applied=ref)
            for key, rev in state.revisions.items()
            if rev.ok and rev.digest is not None
            for ref in [RevisionRef(1, rev.digest, "active", rev.commit)]
        }
    )


def _changed_keys(before: DesiredState, after: DesiredState) -> set[tuple[str, str]]:
    """Keys whose bundle file, or whose environment's file, differs."""
    changed_envs = {
        name
        for name in set(before.environments) | set(after.environments)
        if (before.environments.get(name) or _NO_ENV).blob_sha
        != (after.environments.get(name) or _NO_ENV).blob_sha
    }
    keys = set(before.revisions) | set(after.revisions)
    return {
        key
        for key in keys
        if key[1] in changed_envs
        or _identity(before.revisions.get(key)) != _identity(after.revisions.get(key))
    }


class _NoEnv:
    blob_sha = None


_NO_ENV = _NoEnv()


def _identity(rev: DesiredRevision | None) -> tuple[str | None, str | None]:
    return (None, None) if rev is None else (rev.path, rev.fingerprint)


def _item(
    action: Action,
    after: DesiredState,
    before: DesiredState,
    entry: ObservedEntry,
    store: Store | None,
) -> dict[str, Any]:
    rev = action.revision or after.revisions.get(action.key)
    env = after.environments.get(action.environment)
    rules = env.promotion if env is not None else None
    active_spec = _active_spec(action, before, entry, store)
    return {
        "bundle": action.name,
        "action": action.kind.value,
        "reason": action.reason,
        "message": action.message,
        "from": entry.active.digest if entry.active else None,
        "to": rev.digest if rev is not None else None,
        "verified": rev.ok if rev is not None else None,
        "signers": list(rev.signer_key_ids) if rev is not None else [],
        "problems": [p.to_dict() for p in (rev.problems if rev is not None else ())]
        + [p.to_dict() for p in action.reasons if rev is None or p not in rev.problems],
        "approvals": {
            "required": bool(rules and rules.require_human_approval),
            "approvers": list(rules.approvers) if rules else [],
            "min_approvals": rules.min_approvals if rules else 0,
            "upstream": rules.require_approved_in if rules else None,
        },
        "spec_diff": _diff(active_spec, rev.spec if rev is not None else None, action),
        # the steps a promotion will roll out by (None: every new run at once)
        "rollout": rollout_steps(action, env, entry),
    }


def _active_spec(
    action: Action, before: DesiredState, entry: ObservedEntry, store: Store | None
) -> Mapping[str, Any] | None:
    if entry.active is None:
        return None
    if store is not None:
        return dict(
            store.registry.get_revision(action.name, action.environment, entry.active.number).spec
        )
    old = before.revisions.get(action.key)
    return old.spec if old is not None else None


def _diff(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None, action: Action) -> str:
    def lines(spec: Mapping[str, Any] | None) -> list[str]:
        return [] if spec is None else json.dumps(spec, indent=2, sort_keys=True).splitlines(True)

    where = f"{action.name}@{action.environment}"
    return "".join(difflib.unified_diff(lines(old), lines(new), f"{where} active", f"{where} head"))


# --------------------------------------------------------------------------- markdown

_VERDICT = {
    "activate": "✅ promotes",
    "noop": "no change",
    "wait_for_approval": "⏳ needs approval",
    "wait_for_upstream": "⏳ after upstream",
    "reject": "❌ rejected",
    "refuse": "⛔ refused",
    "prune": "🗑️ removed",
    PRUNE_HELD: "⏳ removal needs approval",
    PRUNE_REFUSED: "⛔ removal refused",
}


def render_markdown(data: Mapping[str, Any]) -> str:
    """The pull-request comment: one section per environment, a table and the diffs."""
    out = [
        MARKER,
        f"## Kneo plan: `{data['base'][:12]}` → `{data['head'][:12]}`",
        "",
        f"Compared with the {'registry' if data['against'] == 'registry' else 'base commit'}: "
        f"**{data['changes']} change(s)**, **{data['refused']} refused**.",
        "",
    ]
    out += _policy_markdown(data.get("policies") or [])
    if not data["environments"] and not data.get("policies"):
        out.append("No bundle or environment file changes.")
    for env in data["environments"]:
        out += [
            f"### {env['environment']}",
            "",
            "| bundle | outcome | from | to | verdict | approvals |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for b in env["bundles"]:
            out.append(
                f"| `{b['bundle']}` | {_outcome(b)} "
                f"| `{short(b['from'])}` | `{short(b['to'])}` | {_verdict(b)} | {_approvals(b)} |"
            )
        out.append("")
        for b in env["bundles"]:
            out.append(f"- **{b['bundle']}**: {_cell(b['message'])}")
            if b["spec_diff"]:
                out += [
                    "",
                    "  <details><summary>spec diff against the active revision</summary>",
                    "",
                    "  ```diff",
                    *("  " + line for line in b["spec_diff"].splitlines()),
                    "  ```",
                    "  </details>",
                    "",
                ]
        out.append("")
    for problem in data["problems"]:
        out.append(f"- problem `{problem['code']}`: {_cell(problem['message'])}")
    return "\n".join(out).rstrip() + "\n"


_POLICY_STATE = {
    "applies": "✅ takes effect",
    "held": "⛔ held",
    "kept": "⛔ kept (last verified policy)",
    "below_floor": "⛔ below the floor",
    "not_in_force": "⛔ not in force",
}


def _policy_markdown(policies: list[Mapping[str, Any]]) -> list[str]:
    """The policy changes: per environment, the gates and what it needs."""
    if not policies:
        return []
    out = [
        "### Policy changes",
        "",
        "| environment | outcome | loosens | tightens | needs |",
        "| --- | --- | --- | --- | --- |",
    ]
    for p in policies:
        out.append(
            f"| `{p['environment']}` | {_POLICY_STATE.get(p['state'], p['state'])} "
            f"| {_cell(', '.join(p['loosened'])) or '—'} | {_cell(', '.join(p['tightened'])) or '—'} "
            f"| {_needs(p['needs'])} |"
        )
    out.append("")
    out += [f"- **{p['environment']}**: {_cell(p['message'])}" for p in policies]
    return [*out, ""]


def _needs(needs: Mapping[str, Any]) -> str:
    if not needs:
        return "—"
    parts = [f"{needs.get('signatures')} signature(s)"]
    keys = needs.get("keys")
    if keys:
        parts[0] += f" of {', '.join(keys)}"
    if needs.get("approvals"):
        who = ", ".join(needs.get("approvers") or []) or "anyone"
        parts.append(f"{needs['approvals']} of {who} approving")
    if needs.get("as_for"):
        parts.append(f"as {needs['as_for']} demands")
    return "; ".join(parts)


def _outcome(b: Mapping[str, Any]) -> str:
    if b.get("rollout"):
        return f"🚦 rolls out ({len(b['rollout'])} steps)"
    return str(_VERDICT.get(b["reason"], _VERDICT.get(b["action"])))


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _verdict(b: Mapping[str, Any]) -> str:
    if b["verified"] is None:
        return "—"
    if b["verified"]:
        signers = ", ".join(b["signers"]) or "-"
        extra = [p["code"] for p in b["problems"]]
        return f"signed by {signers}" + (f"; {', '.join(extra)}" if extra else "")
    return ", ".join(f"`{p['code']}`" for p in b["problems"]) or "invalid"


def _approvals(b: Mapping[str, Any]) -> str:
    a = b["approvals"]
    parts = []
    if a["upstream"]:
        parts.append(f"active in {a['upstream']} first")
    if a["required"]:
        who = ", ".join(a["approvers"]) or "anyone"
        parts.append(f"{a['min_approvals']} of {who}")
    return "; ".join(parts) or "—"


def _project_id(store: object) -> int:
    """The project whose promotion tasks the store's registry names (its view's)."""
    return int(getattr(store, "project_id", DEFAULT_PROJECT_ID))
