"""Per-environment policy files (``environments/<env>.yaml``) and the stricter-wins merge.

An environment file makes the rules for one environment reviewable in a pull request::

    version: v1
    environment: prod
    policy_enforcement: {require_human_review: true, blocked_diagnostic_codes: [...]}
    runs: {require_approved_bundle: true}
    promotion: {require_approved_in: staging, require_human_approval: true,
                approvers: [release-managers], min_approvals: 1}
    required_signatures: 1
    accepted_key_ids: [ci]
    budgets: {max_model_calls: 50, max_tool_calls: 200, max_tokens: 500000, max_cost: 2.50,
              on_exceeded: pause}

When ``.kneo/config.yaml`` also sets a policy for the environment, :func:`merge_stricter`
combines the two so that neither file can loosen the other: booleans are OR-ed, blocked code
lists united, counts take the maximum, allow-lists (``approvers``, ``accepted_key_ids``) are
intersected, budget limits take the smaller and ``on_exceeded: fail`` wins over ``pause``.
Omitting a field never loosens: an absent block or list takes no part.
``accepted_key_ids`` only narrows the verifier's own trusted keys; it can never add one.

Contract/trust layer: reads the YAML files it is given, nothing else.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from kneo.destinations import parse_destination
from kneo.errors import ConfigError, ErrorCode
from kneo.names import NAME_PATTERN
from kneo.policy.rollout import RolloutPolicy, looser_parts
from kneo.spec.project import ENVIRONMENTS_DIR as ENVIRONMENTS_DIR  # the project's to say
from kneo.spec.project import ProjectContext
from kneo.spec.project_blocks import PolicyEnforcement
from kneo.spec.yaml_io import read_yaml_mapping, validate_mapping
from kneo.usage import to_nanos

_ENV_NAME = _KEY_ID = NAME_PATTERN

M = TypeVar("M", bound=BaseModel)
N = TypeVar("N", int, Decimal)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RunsPolicy(_Model):
    #: Runs in this environment must come from an approved, verified bundle (no ad-hoc specs).
    require_approved_bundle: bool = False


_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


class FreezeWindow(_Model):
    """A time no promotion happens in this environment unless its approvers approve an
    override: explicit (``from``/``until``, either open-ended) or weekly (``days`` with
    ``start``/``end`` times, in ``timezone``; an ``end`` at or before ``start`` runs into the
    next day)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    reason: str = Field(min_length=1, max_length=500)
    from_: datetime | None = Field(default=None, alias="from")
    until: datetime | None = None
    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] | None = None
    start: str | None = Field(default=None, pattern=_HHMM)
    end: str | None = Field(default=None, pattern=_HHMM)
    timezone: str = "UTC"

    @model_validator(mode="after")
    def _one_kind(self) -> FreezeWindow:
        explicit = self.from_ is not None or self.until is not None
        weekly = self.days is not None or self.start is not None or self.end is not None
        if explicit == weekly:
            raise ValueError(
                "a freeze window is either from/until or days with start and end, not both"
            )
        if weekly and not (self.days and self.start and self.end):
            raise ValueError("a weekly freeze window needs days, start and end")
        for moment in (self.from_, self.until):
            if moment is not None and moment.tzinfo is None:
                raise ValueError("from and until need a timezone (e.g. 2026-12-20T00:00:00Z)")
        if self.from_ and self.until and self.until <= self.from_:
            raise ValueError("until must be after from")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {self.timezone!r}") from None
        return self

    def active_at(self, now: datetime) -> bool:
        """Whether ``now`` (aware) is inside the window."""
        if self.days is None:
            return (self.from_ is None or now >= self.from_) and (
                self.until is None or now < self.until
            )
        local = now.astimezone(ZoneInfo(self.timezone))
        clock = local.strftime("%H:%M")
        today, yesterday = _DAYS[local.weekday()], _DAYS[(local.weekday() - 1) % 7]
        start, end = self.start or "00:00", self.end or "00:00"
        if start < end:
            return today in self.days and start <= clock < end
        return (today in self.days and clock >= start) or (yesterday in self.days and clock < end)

    def describe(self) -> str:
        """``"holidays (until 2027-01-05T00:00:00+00:00)"`` for messages."""
        if self.days is None:
            span = (f"from {self.from_.isoformat()} " if self.from_ else "") + (
                f"until {self.until.isoformat()}" if self.until else "open-ended"
            )
        else:
            span = f"{','.join(self.days)} {self.start}-{self.end} {self.timezone}"
        return f"{self.reason} ({span.strip()})"


class EvalRequirement(_Model):
    """A suite a bundle must have passed (a signed attestation in the bundle, docs/evals.md)."""

    suite: str = Field(pattern=NAME_PATTERN)
    #: The lowest pass rate that promotes (1.0: every case).
    min_pass_rate: float = Field(default=1.0, ge=0.0, le=1.0)


class PromotionPolicy(_Model):
    """What must be true before a bundle revision becomes active in this environment."""

    #: The same spec digest must already be active in this environment (e.g. ``staging``).
    require_approved_in: str | None = Field(default=None, pattern=_ENV_NAME)
    #: A person must approve the promotion (a human task), not just CI.
    require_human_approval: bool = False
    #: Who may approve (user or group names); empty means anyone allowed to approve.
    approvers: list[str] = Field(default_factory=list)
    #: How many distinct approvers must approve.
    min_approvals: int = Field(default=1, ge=1, le=20)
    #: Refuse to re-activate a digest first in force before the active one (a force-push to
    #: an older commit); only ``kneo registry rollback`` goes back.
    refuse_downgrade: bool = False
    #: Freeze windows: no promotion inside one unless the approvers approve an override.
    freeze: list[FreezeWindow] = Field(default_factory=list, max_length=50)
    #: Eval suites the bundle must carry a passing, signed result of (``kneo eval run``).
    require_evals: list[EvalRequirement] = Field(default_factory=list, max_length=50)

    @field_validator("require_evals")
    @classmethod
    def _one_per_suite(cls, value: list[EvalRequirement]) -> list[EvalRequirement]:
        names = [r.suite for r in value]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"suite {repeated[0]!r} is required twice")
        return value


class ResourcesPolicy(_Model):
    """What runs in this environment may reach on the host: a narrowing of what the project
    declares (``.kneo/config.yaml``), never a widening (docs/security.md). An unset list
    takes no part; a set one is an allow-list a reference must also pass."""

    #: Declared secrets (names or variables) specs may use here.
    secrets: list[str] | None = None
    #: Declared MCP servers specs may use here.
    mcp_servers: list[str] | None = None
    #: Destinations (hosts, networks, URL prefixes, ``loopback``) a URL must also match.
    network: list[str] | None = None
    #: Signed bundles may start their own stdio MCP commands here (reviewed and signed code);
    #: specs run from a file or through the API never may.
    bundle_processes: bool = False

    @model_validator(mode="after")
    def _destinations_parse(self) -> ResourcesPolicy:
        for entry in self.network or []:
            parse_destination(entry)
        return self


class BudgetsPolicy(_Model):
    """What one run may spend in this environment (``docs/runs.md#budgets``). An unset limit
    takes no part. Counted over every agent of the run, checked before each model call and
    each tool call; at a limit the run pauses for a person (continue with a raised limit, or
    stop) or fails with ``budget_exceeded``, as ``on_exceeded`` says."""

    #: Model requests per run (every turn of every agent, planning turns included).
    max_model_calls: int | None = Field(default=None, ge=1)
    #: Tool calls answered per run (run, refused or decided by a person alike).
    max_tool_calls: int | None = Field(default=None, ge=1)
    #: Input plus output tokens per run, as the providers report them.
    max_tokens: int | None = Field(default=None, ge=1)
    #: What the run's model calls may cost, in the project's price table's currency
    #: (``prices:``, docs/project_config.md#prices); calls of unpriced models count 0 here.
    max_cost: Decimal | None = Field(default=None, gt=0, le=1_000_000_000, allow_inf_nan=False)
    #: ``pause``: a human task (kind ``budget``) decides; ``fail``: the run fails.
    on_exceeded: Literal["pause", "fail"] = "pause"

    @cached_property
    def limits(self) -> dict[str, int]:
        """The set limits by what they count (``model_calls``, ``tool_calls``, ``tokens``;
        ``cost`` in nanos of the currency, :mod:`kneo.spec.prices`)."""
        pairs = (
            ("model_calls", self.max_model_calls),
            ("tool_calls", self.max_tool_calls),
            ("tokens", self.max_tokens),
            ("cost", None if self.max_cost is None else to_nanos(self.max_cost)),
        )
        return {name: value for name, value in pairs if value is not None}


class EnvironmentPolicy(_Model):
    """One environment's policy: the merged view every command and the controller use."""

    version: Literal["v1"] = "v1"
    #: The environment's name; in a file it must match the file name when given.
    environment: str | None = Field(default=None, pattern=_ENV_NAME)
    description: str | None = None
    #: Spec gates (``E_POLICY_*``); ``None`` when neither source sets any.
    policy_enforcement: PolicyEnforcement | None = None
    runs: RunsPolicy = Field(default_factory=RunsPolicy)
    promotion: PromotionPolicy = Field(default_factory=PromotionPolicy)
    #: Bundles need signatures from this many distinct accepted keys.
    required_signatures: int = Field(default=1, ge=1, le=10)
    #: Narrows which trusted keys may sign for this environment; ``None`` means any trusted key.
    accepted_key_ids: list[str] | None = None
    #: Narrows what runs here may reach: secrets, MCP servers, network destinations.
    resources: ResourcesPolicy = Field(default_factory=ResourcesPolicy)
    #: What one run may spend here: model calls, tool calls, tokens.
    budgets: BudgetsPolicy = Field(default_factory=BudgetsPolicy)
    #: How a promoted revision takes over new runs (a canary by share, judged by analysis);
    #: ``None``: all at once (:mod:`kneo.policy.rollout`).
    rollout: RolloutPolicy | None = None

    @model_validator(mode="after")
    def _check(self) -> EnvironmentPolicy:
        for key_id in self.accepted_key_ids or []:
            if not re.match(_KEY_ID, key_id):
                raise ValueError(f"accepted_key_ids: {key_id!r} is not a valid key id")
        if self.environment and self.promotion.require_approved_in == self.environment:
            raise ValueError("promotion.require_approved_in cannot name the environment itself")
        return self


# --------------------------------------------------------------------------- merge


def _union(values: Sequence[list[Any]]) -> list[Any]:
    out: list[Any] = []
    for items in values:
        out.extend(item for item in items if item not in out)
    return out


def _merge_flat(model: type[M], parts: Sequence[M], where: str) -> M:
    """Field by field over every part's effective value: the strictest value wins.

    ``bool`` -> any (``enabled`` included: a block that exists is enabled unless it says
    otherwise); ``list`` -> union; ``int``/``float`` -> the larger, or the smaller for a
    ``max_*`` limit. Values of any other type must agree.
    """
    values: dict[str, Any] = {}
    for name in model.model_fields:
        setters = [getattr(p, name) for p in parts]
        first = setters[0]
        if isinstance(first, bool):
            values[name] = any(setters)
        elif isinstance(first, list):
            values[name] = _union(setters)
        elif isinstance(first, int | float) and all(isinstance(v, int | float) for v in setters):
            values[name] = min(setters) if name.startswith("max_") else max(setters)
        elif all(v == first for v in setters):
            values[name] = first
        else:
            raise ConfigError(
                f"{where}.{name} is set differently by the project config and the "
                f"environment file ({', '.join(repr(v) for v in setters)}); make them agree",
                code=ErrorCode.environment_policy_conflict,
                field=f"{where}.{name}",
            )
    return model.model_validate(values)


def merge_enforcement(
    a: PolicyEnforcement | None, b: PolicyEnforcement | None
) -> PolicyEnforcement | None:
    """The stricter combination of two ``policy_enforcement`` blocks (``None`` = not set)."""
    parts = [p for p in (a, b) if p is not None]
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    return _merge_flat(PolicyEnforcement, parts, "policy_enforcement")


def _merge_allow_list(
    a: list[str] | None, b: list[str] | None, *, empty_means_any: bool
) -> list[str] | None:
    lists = [x for x in (a, b) if x is not None and (x or not empty_means_any)]
    if not lists:
        return [] if empty_means_any else None
    if len(lists) == 1:
        return list(lists[0])
    return [item for item in lists[0] if item in lists[1]]


def merge_stricter(a: EnvironmentPolicy, b: EnvironmentPolicy) -> EnvironmentPolicy:
    """Combine two policies for one environment so that the stricter setting of each wins.

    Symmetric up to list order. Raises ``environment_policy_conflict`` where there is no
    stricter choice: two different ``require_approved_in`` environments, or ``approvers``
    lists with nobody in common.
    """
    set_a, set_b = a.model_fields_set, b.model_fields_set

    approved_in = [p.promotion.require_approved_in for p in (a, b)]
    named = [e for e in approved_in if e]
    if len(set(named)) > 1:
        raise ConfigError(
            "promotion.require_approved_in is set to different environments "
            f"({', '.join(named)}); make the project config and environment file agree",
            code=ErrorCode.environment_policy_conflict,
            field="promotion.require_approved_in",
        )
    approvers = _merge_allow_list(
        a.promotion.approvers, b.promotion.approvers, empty_means_any=True
    )
    if a.promotion.approvers and b.promotion.approvers and not approvers:
        raise ConfigError(
            "promotion.approvers lists have nobody in common, so no one could approve",
            code=ErrorCode.environment_policy_conflict,
            field="promotion.approvers",
        )
    promotion = PromotionPolicy(
        require_approved_in=named[0] if named else None,
        require_human_approval=a.promotion.require_human_approval
        or b.promotion.require_human_approval,
        approvers=approvers or [],
        min_approvals=max(a.promotion.min_approvals, b.promotion.min_approvals),
        refuse_downgrade=a.promotion.refuse_downgrade or b.promotion.refuse_downgrade,
        freeze=[
            *a.promotion.freeze,
            *(w for w in b.promotion.freeze if w not in a.promotion.freeze),
        ],
        require_evals=merge_evals(a.promotion.require_evals, b.promotion.require_evals),
    )
    accepted = _merge_allow_list(
        a.accepted_key_ids if "accepted_key_ids" in set_a else None,
        b.accepted_key_ids if "accepted_key_ids" in set_b else None,
        empty_means_any=False,
    )
    return EnvironmentPolicy(
        environment=a.environment or b.environment,
        resources=_merge_resources(a.resources, b.resources),
        description=a.description or b.description,
        policy_enforcement=merge_enforcement(a.policy_enforcement, b.policy_enforcement),
        runs=RunsPolicy(
            require_approved_bundle=a.runs.require_approved_bundle or b.runs.require_approved_bundle
        ),
        promotion=promotion,
        required_signatures=max(a.required_signatures, b.required_signatures),
        accepted_key_ids=accepted,
        budgets=merge_budgets(a.budgets, b.budgets),
        rollout=merge_rollouts(a.rollout, b.rollout),
    )


def merge_rollouts(a: RolloutPolicy | None, b: RolloutPolicy | None) -> RolloutPolicy | None:
    """The stricter of two rollouts: one that is no looser than the other (either, when
    they are equally strict); ``environment_policy_conflict`` when each is looser somewhere."""
    if a is None or b is None or a == b:
        return a or b
    if not looser_parts(a, b):
        return b
    if not looser_parts(b, a):
        return a
    raise ConfigError(
        "rollout is set differently by the project config and the environment file and "
        f"neither is the stricter ({'; '.join(looser_parts(a, b))}); make them agree",
        code=ErrorCode.environment_policy_conflict,
        field="rollout",
    )


def merge_evals(a: list[EvalRequirement], b: list[EvalRequirement]) -> list[EvalRequirement]:
    """Every suite either side requires, at the higher of the two minimum pass rates."""
    rates: dict[str, float] = {}
    for requirement in [*a, *b]:
        rates[requirement.suite] = max(rates.get(requirement.suite, 0.0), requirement.min_pass_rate)
    return [EvalRequirement(suite=s, min_pass_rate=r) for s, r in sorted(rates.items())]


def merge_budgets(a: BudgetsPolicy, b: BudgetsPolicy) -> BudgetsPolicy:
    """The smaller of each limit (an unset one takes no part); ``fail`` where either side
    says so."""

    def smaller(x: N | None, y: N | None) -> N | None:
        return min(v for v in (x, y) if v is not None) if x is not None or y is not None else None

    return BudgetsPolicy(
        max_model_calls=smaller(a.max_model_calls, b.max_model_calls),
        max_tool_calls=smaller(a.max_tool_calls, b.max_tool_calls),
        max_tokens=smaller(a.max_tokens, b.max_tokens),
        max_cost=smaller(a.max_cost, b.max_cost),
        on_exceeded="fail" if "fail" in (a.on_exceeded, b.on_exceeded) else "pause",
    )


def run_limits(policy: EnvironmentPolicy) -> dict[str, Any]:
    """``resources:`` and ``budgets:`` of ``policy`` as the document the GitOps controller
    publishes for runs (fields a file leaves unset left out; nothing when it sets neither)."""
    doc: dict[str, Any] = {}
    resources = policy.resources.model_dump(mode="json", exclude_unset=True)
    if resources:
        doc["resources"] = resources
    if policy.budgets.limits:
        doc["budgets"] = policy.budgets.model_dump(mode="json", exclude_none=True)
    return doc


def with_run_limits(
    policy: EnvironmentPolicy | None, document: Mapping[str, Any] | None
) -> EnvironmentPolicy | None:
    """``policy`` made stricter by a published :func:`run_limits` ``document`` (the GitOps
    repository's ``resources:`` and ``budgets:``), the same rule as two files: each limit
    the smaller, allow-lists intersected, ``fail`` over ``pause``."""
    if not document:
        return policy
    published = EnvironmentPolicy(
        resources=ResourcesPolicy.model_validate(document.get("resources") or {}),
        budgets=BudgetsPolicy.model_validate(document.get("budgets") or {}),
    )
    return merge_stricter(policy, published) if policy is not None else published


def _merge_resources(a: ResourcesPolicy, b: ResourcesPolicy) -> ResourcesPolicy:
    """Allow-lists intersect (an unset one takes no part); ``bundle_processes`` holds only
    where every side that sets it allows it."""
    lists = {
        name: _merge_allow_list(
            getattr(a, name) if name in a.model_fields_set else None,
            getattr(b, name) if name in b.model_fields_set else None,
            empty_means_any=False,
        )
        for name in ("secrets", "mcp_servers", "network")
    }
    fields: dict[str, Any] = {name: value for name, value in lists.items() if value is not None}
    switches = [p.bundle_processes for p in (a, b) if "bundle_processes" in p.model_fields_set]
    if switches:
        fields["bundle_processes"] = all(switches)
    return ResourcesPolicy(**fields)


# --------------------------------------------------------------------------- files


def environment_file_path(environments_dir: str | os.PathLike[str], env: str) -> Path | None:
    """``<dir>/<env>.yaml`` (or ``.yml``) when it exists, else ``None``."""
    for suffix in (".yaml", ".yml"):
        candidate = Path(environments_dir) / f"{env}{suffix}"
        if os.path.lexists(candidate):  # read (and refused) even if not a regular file
            return candidate
    return None


def load_environment_file(path: str | os.PathLike[str]) -> EnvironmentPolicy:
    """Read and validate one environment file; errors name the file, line and field.

    The file's name (without ``.yaml``) is the environment; an ``environment:`` member that
    says otherwise is an error, so a copied file cannot silently apply to the wrong place.
    """
    p = Path(path)
    data, text = read_yaml_mapping(p, what="environment file")
    env = p.stem
    named = data.get("environment")
    if named is not None and named != env:
        raise ConfigError(
            f"{p}: environment is {named!r} but the file is named for {env!r}",
            code=ErrorCode.config_error,
            file=str(p),
            field="environment",
        )
    data.setdefault("environment", env)
    return validate_mapping(EnvironmentPolicy, data, file=p, text=text, kind="environment file")


def load_environments(directory: str | os.PathLike[str]) -> dict[str, EnvironmentPolicy]:
    """Every ``*.yaml``/``*.yml`` environment file in a directory, by environment name."""
    root = Path(directory)
    if not root.is_dir():
        return {}
    policies: dict[str, EnvironmentPolicy] = {}
    for path in sorted([*root.glob("*.yaml"), *root.glob("*.yml")]):
        if path.stem in policies:
            raise ConfigError(
                f"{root}: environment {path.stem!r} has both a .yaml and a .yml file",
                code=ErrorCode.config_error,
                file=str(path),
            )
        policies[path.stem] = load_environment_file(path)
    return policies


def resolve_environment(
    env: str,
    *,
    project_policy: PolicyEnforcement | None,
    environments_dir: str | os.PathLike[str] | None,
) -> EnvironmentPolicy:
    """The merged policy for ``env``: the project config's enforcement block and, when
    ``<environments_dir>/<env>.yaml`` exists, that file, stricter setting of each winning."""
    project = (
        EnvironmentPolicy(environment=env, policy_enforcement=project_policy)
        if project_policy is not None
        else EnvironmentPolicy(environment=env)
    )
    path = environment_file_path(environments_dir, env) if environments_dir is not None else None
    if path is None:
        return project
    return merge_stricter(project, load_environment_file(path))


def resolve_for_context(context: ProjectContext, env: str) -> EnvironmentPolicy:
    """The merged policy of ``env`` in a project: ``.kneo/config.yaml`` plus
    ``<project root>/environments/<env>.yaml``. Signing and the CLI use this."""
    return resolve_environment(
        env,
        project_policy=context.config.policy_for(env),
        environments_dir=context.root / ENVIRONMENTS_DIR,
    )


def environment_policy_json_schema() -> dict[str, Any]:
    """The JSON Schema of an environment file, as shipped in
    ``kneo/schemas/environment.schema.json``."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://kneo.dev/schemas/environment.schema.json",
        **EnvironmentPolicy.model_json_schema(),
        "title": "Kneo environment policy file v1",
    }
