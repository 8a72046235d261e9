"""Values the reconcile core works on: desired state (Git), observed state (registry), actions.

Plain frozen data, no I/O. The loader builds :class:`DesiredState` from one commit, the
registry is observed as :class:`ObservedState` (:mod:`kneo.controller.observe`),
:func:`kneo.controller.planner.plan` turns the pair into :class:`Action` values, and the
applier writes them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Any

from kneo.bundle.format import EvalAttestation
from kneo.policy.environment import EnvironmentPolicy, EvalRequirement, run_limits

#: ``(bundle name, environment)``: the unit the registry keeps one active revision for.
BundleKey = tuple[str, str]

#: The actor of the controller's own audit events (what it applies, records, decides).
ACTOR = "kneo-controller"


@dataclass(frozen=True)
class Problem:
    """Why something cannot be promoted: a stable ``code`` and a message for people."""

    code: str
    message: str
    #: The file it is about, for repository-level problems about one file.
    path: str | None = None

    def to_dict(self) -> dict[str, str]:
        data = {"code": self.code, "message": self.message}
        if self.path is not None:
            data["path"] = self.path
        return data


@dataclass(frozen=True)
class PromotionRules:
    """The promotion part of an environment's policy, as the planner needs it."""

    require_approved_in: str | None = None
    require_human_approval: bool = False
    approvers: tuple[str, ...] = ()
    min_approvals: int = 1
    #: ``promotion.refuse_downgrade``: never re-activate a digest first put in force before
    #: the active one (a rollback is the only way back).
    refuse_downgrade: bool = False
    #: ``promotion.freeze`` windows (:class:`kneo.policy.environment.FreezeWindow`).
    freeze: tuple[Any, ...] = ()
    #: ``promotion.require_evals``: suites the bundle must carry a passing result of.
    require_evals: tuple[EvalRequirement, ...] = ()


@dataclass(frozen=True)
class DesiredEnvironment:
    """An ``environments/<env>.yaml`` at the commit; ``problems`` when it could not be used."""

    name: str
    path: str
    blob_sha: str
    promotion: PromotionRules = field(default_factory=PromotionRules)
    required_signatures: int = 1
    accepted_key_ids: tuple[str, ...] | None = None
    problems: tuple[Problem, ...] = ()
    #: ``runs.require_approved_bundle``: runs there must use the registry (read at runtime).
    require_approved_bundle: bool = False
    #: ``resources:`` and ``budgets:`` as set in the file (unset fields left out), published
    #: for runs (read at runtime, merged stricter-wins with the project's own file).
    run_limits: Mapping[str, Any] = field(default_factory=dict)
    #: The effective policy (the file merged with the project config's enforcement) bundles
    #: are judged by; ``None`` when the file could not be used.
    policy: EnvironmentPolicy | None = field(default=None, compare=False)
    #: The project config blob ``policy`` was merged with (part of each verdict's identity).
    config_sha: str | None = None
    #: No verified policy is in force here (a new environment awaiting approval, one below
    #: a floor): ``problems`` says why, and a verdict must change once it is.
    closed: bool = False

    @classmethod
    def of(
        cls,
        name: str,
        path: str,
        blob_sha: str,
        policy: EnvironmentPolicy,
        config_sha: str | None,
    ) -> DesiredEnvironment:
        """The planner's view of an effective ``policy``."""
        return cls(
            name,
            path,
            blob_sha,
            promotion=PromotionRules(
                require_approved_in=policy.promotion.require_approved_in,
                require_human_approval=policy.promotion.require_human_approval,
                approvers=tuple(policy.promotion.approvers),
                min_approvals=policy.promotion.min_approvals,
                refuse_downgrade=policy.promotion.refuse_downgrade,
                freeze=tuple(policy.promotion.freeze),
                require_evals=tuple(policy.promotion.require_evals),
            ),
            required_signatures=policy.required_signatures,
            accepted_key_ids=None
            if policy.accepted_key_ids is None
            else tuple(policy.accepted_key_ids),
            require_approved_bundle=policy.runs.require_approved_bundle,
            run_limits=run_limits(policy),
            policy=policy,
            config_sha=config_sha,
        )

    @property
    def identity(self) -> str:
        """What a verdict under this environment depends on: its file's blob, and whether
        its policy is in force."""
        return f"{self.blob_sha}:closed" if self.closed else self.blob_sha

    def run_rules(self) -> dict[str, Any]:
        """What runs read of this environment at runtime: ``require_approved_bundle``, the
        limits, and the freeze windows (schedules hold their ticks in a freeze)."""
        rules: dict[str, Any] = {
            "require_approved_bundle": self.require_approved_bundle,
            **self.run_limits,
        }
        if self.promotion.freeze:
            rules["freeze"] = [
                w.model_dump(mode="json", by_alias=True, exclude_none=True)
                for w in self.promotion.freeze
            ]
        return rules

    def trust(self) -> dict[str, Any]:
        """What rollbacks read of this environment's trust (signatures, keys, approvers)."""
        return {
            "required_signatures": self.required_signatures,
            "accepted_key_ids": None
            if self.accepted_key_ids is None
            else list(self.accepted_key_ids),
            "require_human_approval": self.promotion.require_human_approval,
            "approvers": list(self.promotion.approvers),
            "min_approvals": self.promotion.min_approvals,
            "refuse_downgrade": self.promotion.refuse_downgrade,
        }


@dataclass(frozen=True)
class DesiredRevision:
    """One bundle file at the commit, already verified (or not) for its environment.

    ``fingerprint`` identifies exactly what was judged (bundle blob, environment blob,
    keyring), so a rejection is recorded once and re-judged only when one of them changes.
    ``problems`` empty means signature, environment, spec and policy all checked out.
    """

    name: str
    environment: str
    path: str
    fingerprint: str
    commit: str
    digest: str | None = None
    signer_key_ids: tuple[str, ...] = ()
    approved_by: str | None = None
    spec: Mapping[str, Any] | None = None
    problems: tuple[Problem, ...] = ()
    diagnostics: tuple[Mapping[str, Any], ...] = ()
    #: When this verdict must be judged again (a signing key's validity window ends).
    recheck_at: datetime | None = None
    #: The eval results signed into the bundle (``kneo spec bundle sign --evals``).
    evals: tuple[EvalAttestation, ...] = ()
    #: The project files its spec pins, read at ``commit`` and verified (sha256 -> bytes).
    code_files: Mapping[str, bytes] = field(default_factory=dict, compare=False, repr=False)

    @property
    def key(self) -> BundleKey:
        return (self.name, self.environment)

    @property
    def ok(self) -> bool:
        return not self.problems and self.digest is not None


@dataclass(frozen=True)
class DesiredState:
    """Everything Git asks for at one commit, or for some of its bundles (``scope``)."""

    commit: str
    revisions: Mapping[BundleKey, DesiredRevision]
    environments: Mapping[str, DesiredEnvironment]
    #: Repository-level findings (e.g. a bundle file outside ``bundles/<name>/<env>.json``).
    problems: tuple[Problem, ...] = ()
    #: The bundle names this state speaks for (every file of theirs, in every environment);
    #: ``None``: all of the commit. An incremental reconcile plans only these.
    scope: frozenset[str] | None = None
    #: Bundle files at the whole commit (the empty-commit guard); ``None``: ``revisions``.
    bundle_count: int | None = None

    @property
    def has_bundles(self) -> bool:
        return bool(self.revisions) if self.bundle_count is None else self.bundle_count > 0

    def findings(self, previous: Iterable[Mapping[str, str]] = ()) -> list[dict[str, str]]:
        """Every problem at this commit: the repository's, then each file's with its path, in
        path order. A reconcile that applied everything it could still reports these.

        A scoped state judged only its bundles: ``previous`` (the last pass's findings)
        supplies those of the bundles outside its scope."""
        found = [p.to_dict() for p in self.problems if p.path is None]
        about_files = [p.to_dict() for p in self.problems if p.path is not None]
        for revision in self.revisions.values():
            about_files += [{**p.to_dict(), "path": revision.path} for p in revision.problems]
        if self.scope is not None:
            about_files += [
                dict(f) for f in previous if "path" in f and bundle_of(f["path"]) not in self.scope
            ]
        return found + sorted(about_files, key=_finding_order)


def bundle_of(path: str) -> str | None:
    """The bundle directory a ``bundles/<name>/...`` path is under; ``None`` otherwise."""
    parts = PurePosixPath(path).parts
    return parts[1] if len(parts) > 2 and parts[0] == "bundles" else None


def _finding_order(finding: Mapping[str, str]) -> tuple[str, str]:
    """Findings about files in path order (stable: one file's problems keep theirs)."""
    path = PurePosixPath(finding.get("path", ""))
    return (str(path.parent), path.name)


@dataclass(frozen=True)
class RevisionRef:
    """A registry revision as the planner needs it."""

    number: int
    digest: str
    status: str
    commit: str | None = None


@dataclass(frozen=True)
class PinRef:
    """The revision a person held (bundle, environment) at (a rollback pins its target)."""

    revision: int
    digest: str
    pinned_by: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Approvals:
    """Decisions recorded so far on promoting one digest into one environment."""

    approved_by: frozenset[str] = frozenset()
    rejected_by: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ObservedEntry:
    """The registry's view of one (bundle, environment).

    ``applied`` is the newest revision the controller put in force (status active, inactive
    or pruned). When it is not the active one, someone changed the registry outside the
    controller: that is drift.
    """

    active: RevisionRef | None = None
    applied: RevisionRef | None = None
    pending: RevisionRef | None = None
    rejected_fingerprints: frozenset[str] = frozenset()
    suspended: bool = False
    approvals: Approvals = field(default_factory=Approvals)
    #: Whether a human promotion task is open for ``pending``.
    task_open: bool = False
    pin: PinRef | None = None
    #: Each digest ever put in force here -> the first revision that did (downgrade order).
    first_in_force: Mapping[str, int] = field(default_factory=dict)

    @property
    def drifted(self) -> bool:
        """Whether the active revision is not the one the controller last put in force."""
        if self.active is None:
            return self.applied is not None and self.applied.status != "pruned"
        return self.applied is None or self.applied.number != self.active.number


@dataclass(frozen=True)
class ObservedState:
    entries: Mapping[BundleKey, ObservedEntry] = field(default_factory=dict)
    #: Blocked digests -> why ("blocked by <who>: <reason>"), for every environment.
    blocked: Mapping[str, str] = field(default_factory=dict)
    #: Freeze-override decisions by ``(bundle, environment, digest)``.
    overrides: Mapping[tuple[str, str, str], Approvals] = field(default_factory=dict)
    #: Decisions on removing a serving revision, by ``(bundle, environment, subject)``
    #: (:func:`kneo.controller.prune_gate.prune_subject`).
    prunes: Mapping[tuple[str, str, str], Approvals] = field(default_factory=dict)

    def get(self, key: BundleKey) -> ObservedEntry:
        return self.entries.get(key) or _EMPTY


_EMPTY = ObservedEntry()


@dataclass(frozen=True)
class PlanOptions:
    """Controller configuration that changes what the plan does."""

    prune: bool = True
    #: Prune even when the commit holds no bundle at all (Argo CD's ``allowEmpty``).
    allow_empty: bool = False
    #: The moment freeze windows are judged at (``None``: no window applies).
    now: datetime | None = None


class ActionKind(StrEnum):
    ACTIVATE = "activate"
    REJECT = "reject"
    PRUNE = "prune"
    NOOP = "noop"
    WAIT_FOR_APPROVAL = "wait_for_approval"
    WAIT_FOR_UPSTREAM = "wait_for_upstream"
    DRIFT_REVERT = "drift_revert"
    #: A promotion gate refused the revision for now (pin, block, downgrade, freeze): nothing
    #: is recorded as rejected, so lifting the cause lets it through on a later pass.
    REFUSE = "refuse"


#: Kinds that write to the registry; the rest only update conditions.
WRITING_KINDS = frozenset(
    {ActionKind.ACTIVATE, ActionKind.REJECT, ActionKind.PRUNE, ActionKind.DRIFT_REVERT}
)


@dataclass(frozen=True)
class Action:
    """One decision about one (bundle, environment).

    * ``activate``: make ``revision`` active (a new registry revision, or ``target`` if it
      is already pending approval); ``approved_by`` lists the promotion approvers.
    * ``reject``: record ``revision`` as rejected with ``reasons``; the active one stays.
    * ``prune``: the file is gone; deactivate ``target`` (the active revision);
      ``approved_by`` lists who approved the removal where the policy in force asks it.
    * ``drift_revert``: put ``target`` (what the controller applied) back in force, or, with
      ``target`` None, deactivate what someone activated by hand.
    * ``wait_for_approval``: ``revision`` needs more approvals; ``request_task`` asks the
      applier to open the human task (and record a pending revision).
    * ``wait_for_upstream``: the digest is not yet active in ``upstream``.
    * ``refuse``: a gate holds ``revision`` back (``reasons`` says which); the active one
      keeps serving and the refusal is re-judged every pass.
    * ``noop``: nothing to write; ``reason`` says why (up to date, suspended, ...).
    """

    kind: ActionKind
    name: str
    environment: str
    reason: str
    message: str
    revision: DesiredRevision | None = None
    target: RevisionRef | None = None
    reasons: tuple[Problem, ...] = ()
    approved_by: tuple[str, ...] = ()
    upstream: str | None = None
    request_task: bool = False
    #: Set when the action also resolves drift (the registry was changed outside).
    drift: bool = False

    @property
    def key(self) -> BundleKey:
        return (self.name, self.environment)

    @property
    def digest(self) -> str | None:
        if self.revision is not None and self.revision.digest is not None:
            return self.revision.digest
        return self.target.digest if self.target is not None else None

    @property
    def writes(self) -> bool:
        return self.kind in WRITING_KINDS or (
            self.kind in (ActionKind.WAIT_FOR_APPROVAL, ActionKind.REFUSE) and self.request_task
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape printed by ``kneo controller plan|reconcile --json``."""
        data: dict[str, Any] = {
            "action": self.kind.value,
            "bundle": self.name,
            "environment": self.environment,
            "digest": self.digest,
            "reason": self.reason,
            "message": self.message,
        }
        if self.revision is not None:
            data["path"] = self.revision.path
            data["commit"] = self.revision.commit
        if self.target is not None:
            data["revision"] = self.target.number
        if self.reasons:
            data["reasons"] = [p.to_dict() for p in self.reasons]
        if self.approved_by:
            data["approved_by"] = list(self.approved_by)
        if self.upstream:
            data["upstream"] = self.upstream
        if self.kind is ActionKind.WAIT_FOR_APPROVAL or self.request_task:
            data["request_task"] = self.request_task
        if self.drift:
            data["drift"] = True
        return data


class ConditionType(StrEnum):
    VERIFIED = "Verified"
    PROMOTED = "Promoted"
    READY = "Ready"


@dataclass(frozen=True)
class ConditionValue:
    """A condition without its timestamps (the store keeps last transition time)."""

    type: ConditionType
    status: str  # "True" | "False" | "Unknown"
    reason: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {
            "type": self.type.value,
            "status": self.status,
            "reason": self.reason,
            "message": self.message,
        }
