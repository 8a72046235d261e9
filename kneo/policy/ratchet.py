"""Which gates a policy change loosens and which it tightens: :func:`compare`, :func:`loosened`.

A policy file is code: a push that changes ``environments/prod.yaml`` changes what judges
every bundle for prod. The controller lets a change that only tightens take effect at once
and holds one that loosens anything until the policy in force authorizes it
(:mod:`kneo.controller.ratchet`); this module says which is which. Pure (no clock, no I/O) but for :func:`checkout_policy`.

Every field of an environment policy, of its ``policy_enforcement`` block, of a required
eval suite and of a project config is classified in a table below (a rule, or neutral with
the reason why it bears no trust); :func:`unclassified` lists the fields of the models that
are not, and a test keeps it empty, so a field added without a classification fails CI.

Directions, field by field (an absent list or block, where it means "anyone" or "no
limit", is the loosest value):

* a switch that guards (``require_human_approval``, ``refuse_downgrade``,
  ``require_approved_bundle``, every ``policy_enforcement`` switch): on is stricter;
  ``resources.bundle_processes`` grants, so off is stricter;
* counts (``required_signatures``, ``min_approvals``): more is stricter; budget limits:
  less is stricter and unset is unlimited; ``on_exceeded: fail`` is stricter than ``pause``;
* allow-lists (``accepted_key_ids``, ``approvers``, ``resources.secrets|mcp_servers|network``):
  an entry added, or the list removed, loosens; an entry removed tightens;
* ``blocked_diagnostic_codes``: a code removed loosens; freeze windows: a window removed
  (or changed) loosens; ``require_evals``: a suite removed or its rate lowered loosens;
* ``require_approved_in``: removed, or pointed at another environment, loosens;
* an environment added or removed is a change of its own (``environment``) that loosens:
  a new environment is a new place bundles can be promoted to, a removal drops its gates.
"""

from __future__ import annotations

import os
import types
import typing
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from kneo.bundle.digest import canonical_json, sha256_digest
from kneo.policy.environment import (
    ENVIRONMENTS_DIR,
    EnvironmentPolicy,
    EvalRequirement,
    FreezeWindow,
    environment_file_path,
    load_environment_file,
    merge_stricter,
)
from kneo.policy.rollout import RolloutPolicy, looser_parts
from kneo.spec.notifications_config import ReceiverConfig
from kneo.spec.project import CONFIG_DIR, CONFIG_FILE, ProjectConfig, load_project_config
from kneo.spec.project_blocks import EnvironmentConfig, PolicyEnforcement

Direction = Literal["loosened", "tightened"]
LOOSENED: Direction = "loosened"
TIGHTENED: Direction = "tightened"

#: The gate of an environment's own existence (added, removed).
ENVIRONMENT_GATE = "environment"


@dataclass(frozen=True)
class GateChange:
    """One gate that a change moves: its field path, which way, and a line for people
    (``"required_signatures 2 → 1"``, ``"freeze removed: holidays (...)"``)."""

    gate: str
    direction: Direction
    summary: str

    def to_dict(self) -> dict[str, str]:
        return {"gate": self.gate, "direction": self.direction, "summary": self.summary}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GateChange:
        direction: Direction = LOOSENED if data.get("direction") == LOOSENED else TIGHTENED
        return cls(str(data["gate"]), direction, str(data["summary"]))


#: A rule: (gate path, old value, new value) -> the changes between them.
Rule = Callable[[str, Any, Any], list[GateChange]]


# --------------------------------------------------------------------------- rules


def _label(gate: str) -> str:
    """A gate as people name it: the promotion rules without their block's name."""
    return gate.removeprefix("promotion.")


def _show(value: object) -> str:
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(str(v) for v in value) or "none"
    return (
        "unset" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    )


def _switch(*, guards: bool) -> Rule:
    """A boolean; ``guards``: on is the stricter value (else on grants something)."""

    def rule(gate: str, old: bool | None, new: bool | None) -> list[GateChange]:
        if bool(old) == bool(new):
            return []
        stricter = bool(new) == guards
        words = ("added" if new else "removed") if guards else ("allowed" if new else "refused")
        return [GateChange(gate, TIGHTENED if stricter else LOOSENED, f"{_label(gate)} {words}")]

    return rule


def _at_least(gate: str, old: float, new: float) -> list[GateChange]:
    """A count that guards: more is stricter."""
    if old == new:
        return []
    return [GateChange(gate, TIGHTENED if new > old else LOOSENED, f"{_label(gate)} {old} → {new}")]


def _limit(gate: str, old: float | None, new: float | None) -> list[GateChange]:
    """A limit (``None``: unlimited): less is stricter."""
    if old == new:
        return []
    stricter = new is not None and (old is None or new < old)
    shown = [("unlimited" if v is None else str(v)) for v in (old, new)]
    return [
        GateChange(
            gate, TIGHTENED if stricter else LOOSENED, f"{_label(gate)} {shown[0]} → {shown[1]}"
        )
    ]


def _ordered(*values: str) -> Rule:
    """One of ``values``, loosest first."""

    def rule(gate: str, old: str, new: str) -> list[GateChange]:
        if old == new:
            return []
        stricter = values.index(new) > values.index(old)
        return [
            GateChange(gate, TIGHTENED if stricter else LOOSENED, f"{_label(gate)} {old} → {new}")
        ]

    return rule


def _allow_list(*, empty_is_any: bool) -> Rule:
    """Who or what may: ``None`` (and, where ``empty_is_any``, ``[]``) means anyone."""

    def anyone(value: Collection[object] | None) -> bool:
        return value is None or (empty_is_any and not value)

    def rule(
        gate: str, old: Collection[object] | None, new: Collection[object] | None
    ) -> list[GateChange]:
        if anyone(old) and anyone(new):
            return []
        if anyone(new):
            return [GateChange(gate, LOOSENED, f"{_label(gate)} removed (was {_show(old)}): any")]
        if anyone(old):
            return [GateChange(gate, TIGHTENED, f"{_label(gate)} set to {_show(new)}")]
        old, new = old or (), new or ()  # neither is None here (that was "anyone")
        return _entries(gate, old, new, added_loosens=True)

    return rule


def _block_list(gate: str, old: Collection[object], new: Collection[object]) -> list[GateChange]:
    """What is refused: an entry removed loosens."""
    return _entries(gate, old, new, added_loosens=False)


def _entries(
    gate: str, old: Collection[object], new: Collection[object], *, added_loosens: bool
) -> list[GateChange]:
    """The entries ``new`` adds to ``old`` and drops from it, the loosening change first:
    on a list of what may, an added entry loosens; on one of what is refused, a dropped one."""
    added = ("adds", [v for v in new if v not in old])
    dropped = ("drops", [v for v in old if v not in new])
    looser, stricter = (added, dropped) if added_loosens else (dropped, added)
    return [
        GateChange(gate, direction, f"{_label(gate)} {verb} {_show(values)}")
        for direction, (verb, values) in ((LOOSENED, looser), (TIGHTENED, stricter))
        if values
    ]


def _windows(
    gate: str, old: Collection[FreezeWindow], new: Collection[FreezeWindow]
) -> list[GateChange]:
    """Freeze windows, compared whole: one removed or changed loosens, one added tightens."""
    out = []
    for window in old:
        if window not in new:
            out.append(GateChange(gate, LOOSENED, f"freeze removed: {_describe(window)}"))
    for window in new:
        if window not in old:
            out.append(GateChange(gate, TIGHTENED, f"freeze added: {_describe(window)}"))
    return out


def _describe(window: object) -> str:
    return window.describe() if isinstance(window, FreezeWindow) else str(window)


#: The fields of one required eval suite, by name (``suite`` is the key).
REQUIREMENT_RULES: dict[str, Rule | str] = {
    "suite": "the key a requirement is matched by",
    "min_pass_rate": _at_least,
}


def _requirements(
    gate: str, old: Iterable[EvalRequirement], new: Iterable[EvalRequirement]
) -> list[GateChange]:
    """Required eval suites by name: one removed or lowered loosens."""
    before = {r.suite: r for r in old}
    after = {r.suite: r for r in new}
    out = []
    for suite, was in before.items():
        now = after.get(suite)
        if now is None:
            out.append(GateChange(gate, LOOSENED, f"{_label(gate)}: suite {suite} removed"))
            continue
        out += _fields(f"{gate}.{suite}", was, now, REQUIREMENT_RULES)
    out += [
        GateChange(gate, TIGHTENED, f"{_label(gate)}: suite {suite} added")
        for suite in after
        if suite not in before
    ]
    return out


def _upstream(gate: str, old: str | None, new: str | None) -> list[GateChange]:
    """``require_approved_in``: set is stricter; another environment is not comparable, so
    a loosening (its chain is not this one's)."""
    if old == new:
        return []
    if old is None:
        return [GateChange(gate, TIGHTENED, f"{_label(gate)} {new} added")]
    if new is None:
        return [GateChange(gate, LOOSENED, f"{_label(gate)} {old} removed")]
    return [GateChange(gate, LOOSENED, f"{_label(gate)} {old} → {new}")]


def _changed(gate: str, old: object, new: object) -> list[GateChange]:
    """A value with no stricter direction (a module, a URL, a variable): any change loosens,
    since what it now reaches was never reviewed under the policy in force."""
    if old == new:
        return []
    return [GateChange(gate, LOOSENED, f"{_label(gate)} {_show(old)} → {_show(new)}")]


def _grants(
    gate: str, old: Mapping[str, object] | None, new: Mapping[str, object] | None
) -> list[GateChange]:
    """Named grants (``name -> what``: secrets, MCP servers): one added or changed loosens,
    one removed tightens."""
    before, after = dict(old or {}), dict(new or {})
    out = [
        GateChange(gate, LOOSENED, f"{gate}.{name} {'changed' if name in before else 'added'}")
        for name, value in after.items()
        if before.get(name) != value
    ]
    out += [
        GateChange(gate, TIGHTENED, f"{gate}.{name} removed")
        for name in before
        if name not in after
    ]
    return out


def _receivers(
    gate: str, old: Iterable[ReceiverConfig], new: Iterable[ReceiverConfig]
) -> list[GateChange]:
    """Notification receivers by name: they send to destinations with secrets."""
    return _grants(gate, {r.name: r for r in old}, {r.name: r for r in new})


def _environment_grants(
    gate: str,
    old: Mapping[str, EnvironmentConfig] | None,
    new: Mapping[str, EnvironmentConfig] | None,
) -> list[GateChange]:
    """``environments.<env>``: its secrets and network are grants; its policy block is
    judged through that environment's effective policy; overlay and prose bear no trust."""
    out = []
    for env in sorted(set(old or {}) | set(new or {})):
        was, now = (old or {}).get(env), (new or {}).get(env)
        where = f"{gate}.{env}"
        out += _grants(f"{where}.secrets", was.secrets if was else {}, now.secrets if now else {})
        out += _allow_list(empty_is_any=False)(
            f"{where}.network.allow",
            was.network.allow if was else [],
            now.network.allow if now else [],
        )
    return out


def _rollout(gate: str, old: RolloutPolicy | None, new: RolloutPolicy | None) -> list[GateChange]:
    """A rollout (``None``: all at once): a judging step removed, judging more leniently or
    reached at a larger share loosens (:func:`kneo.policy.rollout.looser_parts`); any other
    change (steps added, shares lowered) tightens."""
    if old == new:
        return []
    looser = looser_parts(old, new)
    if looser:
        return [GateChange(gate, LOOSENED, part) for part in looser]
    return [GateChange(gate, TIGHTENED, "rollout added" if old is None else "rollout tightened")]


# --------------------------------------------------------------------------- tables

#: ``policy_enforcement``'s fields (compared only while the block is enabled on both sides).
ENFORCEMENT_RULES: dict[str, Rule | str] = {
    "enabled": _switch(guards=True),
    "fail_on_warnings": _switch(guards=True),
    "blocked_diagnostic_codes": _block_list,
    "require_human_review": _switch(guards=True),
    "require_tool_permissions": _switch(guards=True),
    "deny_unrestricted_tools": _switch(guards=True),
    "require_guardrails": _switch(guards=True),
}


def _enforcement(
    gate: str, old: PolicyEnforcement | None, new: PolicyEnforcement | None
) -> list[GateChange]:
    """An absent or disabled block enforces nothing; between two enabled blocks, field by
    field."""
    on = [p is not None and p.enabled for p in (old, new)]
    if on == [False, False]:
        return []
    if on[0] != on[1]:
        direction = TIGHTENED if on[1] else LOOSENED
        return [GateChange(gate, direction, f"{gate} {'enabled' if on[1] else 'disabled'}")]
    return _fields(gate, old, new, ENFORCEMENT_RULES)


#: Every field of an environment policy, by path: its rule, or why it bears no trust.
ENVIRONMENT_RULES: dict[str, Rule | str] = {
    "version": "the file format's version",
    "environment": "the environment's name, which the comparison is for",
    "description": "prose",
    "required_signatures": _at_least,
    "accepted_key_ids": _allow_list(empty_is_any=False),
    "policy_enforcement": _enforcement,
    "runs.require_approved_bundle": _switch(guards=True),
    "promotion.require_approved_in": _upstream,
    "promotion.require_human_approval": _switch(guards=True),
    "promotion.approvers": _allow_list(empty_is_any=True),
    "promotion.min_approvals": _at_least,
    "promotion.refuse_downgrade": _switch(guards=True),
    "promotion.freeze": _windows,
    "promotion.require_evals": _requirements,
    "resources.secrets": _allow_list(empty_is_any=False),
    "resources.mcp_servers": _allow_list(empty_is_any=False),
    "resources.network": _allow_list(empty_is_any=False),
    "resources.bundle_processes": _switch(guards=False),
    "budgets.max_model_calls": _limit,
    "budgets.max_tool_calls": _limit,
    "budgets.max_tokens": _limit,
    "budgets.max_cost": _limit,
    "budgets.on_exceeded": _ordered("pause", "fail"),
    "rollout": _rollout,
}

_NEUTRAL_PROJECT = "not a grant: it names nothing a spec can reach on the host"

#: Every field of a project config (``.kneo/config.yaml``), by path. The sections that grant
#: host resources have rules; ``policy_enforcement`` is judged through each environment's
#: effective policy (:data:`ENVIRONMENT_RULES`).
PROJECT_RULES: dict[str, Rule | str] = {
    "version": "the file format's version",
    "name": _NEUTRAL_PROJECT,
    "owner": _NEUTRAL_PROJECT,
    "description": "prose",
    "service.default_url": "where the CLI sends requests, not what a spec reaches",
    "paths.state_dir": _changed,
    "paths.artifacts_dir": _changed,
    "paths.logs_dir": _changed,
    "default_spec": _NEUTRAL_PROJECT,
    "default_environment": _changed,
    "environments": _environment_grants,
    "runtime.preferred_mode": _NEUTRAL_PROJECT,
    "runtime.allowed_modes": _allow_list(empty_is_any=False),
    "model.provider": _NEUTRAL_PROJECT,
    "model.name": _NEUTRAL_PROJECT,
    "model.temperature": _NEUTRAL_PROJECT,
    "model.max_tokens": _NEUTRAL_PROJECT,
    "model.base_url": _changed,
    "model.api_key_env": _changed,
    "policy_enforcement": "judged through each environment's effective policy",
    "secrets.providers": _grants,
    "secrets.extra": _grants,
    "secrets.destinations": _changed,
    "retention.runs_days": "how long records are kept, not a grant",
    "retention.checkpoints_days": "how long records are kept, not a grant",
    "retention.queue_days": "how long records are kept, not a grant",
    "retention.continuations_days": "how long records are kept, not a grant",
    "retention.artifacts_days": "how long records are kept, not a grant",
    "retention.logs_days": "how long records are kept, not a grant",
    "notifications.receivers": _receivers,
    # who gets a task's signed decision links and buttons, and whose groups count as theirs
    "notifications.people": _changed,
    "controller": _changed,
    "tool_registry": _changed,
    "mcp_servers": _grants,
    "network.allow": _allow_list(empty_is_any=False),
    "functions.modules": _allow_list(empty_is_any=False),
    "functions.declared": _allow_list(empty_is_any=False),
    # a project skill hands every agent instructions and tools: one added or changed loosens
    "skills": _grants,
    # what the project may run at once and spend per day: as an environment's budgets
    "limits.max_running_runs": _limit,
    "limits.max_queued_runs": _limit,
    "limits.max_model_calls_per_day": _limit,
    "limits.max_tokens_per_day": _limit,
    "limits.max_cost_per_day": _limit,
    "limits.on_exceeded": _ordered("pause", "fail"),
    # what a call costs decides what a money budget allows: a price lowered, a model removed
    # (unpriced calls count 0) or the currency changed lets more through, so any change is
    # held like a loosened budget
    "prices": _changed,
    # who may decide a human request: binding assignees are the stricter; each override entry
    # is one more person or group who may
    "assignments.assignees": _ordered("advisory", "binding"),
    "assignments.override": _allow_list(empty_is_any=False),
}


def _value(model: object, path: str) -> Any:
    for part in path.split("."):
        model = getattr(model, part)
    return model


def _fields(
    prefix: str, old: object, new: object, rules: Mapping[str, Rule | str]
) -> list[GateChange]:
    out: list[GateChange] = []
    for path, rule in rules.items():
        if isinstance(rule, str):
            continue
        out += rule(f"{prefix}.{path}" if prefix else path, _value(old, path), _value(new, path))
    return out


# --------------------------------------------------------------------------- comparisons


def compare(old: EnvironmentPolicy | None, new: EnvironmentPolicy | None) -> list[GateChange]:
    """Every gate that moves from ``old`` to ``new`` (``None``: no such environment), in
    :data:`ENVIRONMENT_RULES` order; an environment added or removed is one change."""
    if old is None and new is None:
        return []
    if old is None:
        return [GateChange(ENVIRONMENT_GATE, LOOSENED, "environment added")]
    if new is None:
        return [GateChange(ENVIRONMENT_GATE, LOOSENED, "environment removed")]
    return _fields("", old, new, ENVIRONMENT_RULES)


def loosened(old: EnvironmentPolicy | None, new: EnvironmentPolicy | None) -> list[GateChange]:
    """The gates ``new`` loosens against ``old``: empty when the change may apply at once."""
    return [c for c in compare(old, new) if c.direction == LOOSENED]


def compare_environments(
    old: Mapping[str, EnvironmentPolicy], new: Mapping[str, EnvironmentPolicy]
) -> dict[str, list[GateChange]]:
    """:func:`compare` for every environment of either side, those that change only. A
    rename is a removal and an addition (an environment is its name); the addition's line
    says which one it was renamed from when the rules are the same."""
    out: dict[str, list[GateChange]] = {}
    for name in sorted(set(old) | set(new)):
        changes = compare(old.get(name), new.get(name))
        if name not in old and name in new:
            same = [o for o in sorted(set(old) - set(new)) if _same_rules(old[o], new[name])]
            if same:
                changes = [
                    GateChange(
                        ENVIRONMENT_GATE, LOOSENED, f"environment added (renamed from {same[0]})"
                    )
                ]
        if changes:
            out[name] = changes
    return out


def _same_rules(a: EnvironmentPolicy, b: EnvironmentPolicy) -> bool:
    return not compare(
        a.model_copy(update={"environment": None}), b.model_copy(update={"environment": None})
    )


def compare_project(old: ProjectConfig | None, new: ProjectConfig | None) -> list[GateChange]:
    """Every host grant of a project config that moves (``None``: no file, the defaults)."""
    return _fields("project", old or ProjectConfig(), new or ProjectConfig(), PROJECT_RULES)


def summary(changes: Iterable[GateChange]) -> str:
    """``"required_signatures 2 → 1, freeze removed: ..."`` for titles and messages."""
    return ", ".join(c.summary for c in changes)


# --------------------------------------------------------------------------- identity


def effective_policy(
    file_policy: EnvironmentPolicy, project_enforcement: PolicyEnforcement | None
) -> EnvironmentPolicy:
    """An environment's rules as they judge: its file, made stricter by the project
    config's ``policy_enforcement`` for it (the controller and ``kneo policy sign`` alike)."""
    if project_enforcement is None:
        return file_policy
    project = EnvironmentPolicy(
        environment=file_policy.environment, policy_enforcement=project_enforcement
    )
    return merge_stricter(project, file_policy)


def checkout_policy(root: str | os.PathLike[str], environment: str) -> EnvironmentPolicy | None:
    """The effective policy of ``environment`` in a checkout of a GitOps repository, as the
    controller computes it at that commit (``None``: the environment has no file). Reads
    ``environments/<env>.yaml`` and ``.kneo/config.yaml`` under ``root``; nothing else of
    this module reads a file."""
    path = environment_file_path(Path(root) / ENVIRONMENTS_DIR, environment)
    if path is None:
        return None
    config = Path(root) / CONFIG_DIR / CONFIG_FILE
    project = load_project_config(config) if os.path.lexists(config) else None
    return effective_policy(
        load_environment_file(path), project.policy_for(environment) if project else None
    )


def policy_digest(environment: str, policy: EnvironmentPolicy | None) -> str:
    """``sha256:`` of an environment's effective policy by value (``None``: the environment
    removed): what a policy approval signs and an approval task decides on."""
    value = None if policy is None else policy.model_dump(mode="json", by_alias=True)
    return sha256_digest(canonical_json({"environment": environment, "policy": value}))


# --------------------------------------------------------------------------- coverage


def _model_of(annotation: object) -> type[BaseModel] | None:
    """The model a field holds directly (``M`` or ``M | None``), else ``None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        models = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(models) == 1:
            return _model_of(models[0])
    return None


def field_paths(model: type[BaseModel], table: Mapping[str, object], prefix: str = "") -> list[str]:
    """Every field path of ``model``: into a nested model unless ``table`` classifies the
    nested model's field as a whole."""
    out: list[str] = []
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        nested = _model_of(info.annotation)
        if nested is not None and path not in table:
            out += field_paths(nested, table, f"{path}.")
        else:
            out.append(path)
    return out


#: Each model and the table that must classify every one of its fields.
TABLES: Sequence[tuple[type[BaseModel], Mapping[str, Rule | str]]] = (
    (EnvironmentPolicy, ENVIRONMENT_RULES),
    (PolicyEnforcement, ENFORCEMENT_RULES),
    (EvalRequirement, REQUIREMENT_RULES),
    (ProjectConfig, PROJECT_RULES),
)


def unclassified(
    tables: Sequence[tuple[type[BaseModel], Mapping[str, Rule | str]]] = TABLES,
) -> list[str]:
    """Fields no table classifies, and table entries no field has: both must be empty."""
    out: list[str] = []
    for model, table in tables:
        paths = field_paths(model, table)
        out += [f"{model.__name__}.{p}: no rule" for p in paths if p not in table]
        out += [f"{model.__name__}.{p}: no such field" for p in table if p not in paths]
    return out
