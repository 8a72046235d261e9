"""A rollout declared as code: how a promoted revision takes over an environment's runs.

An environment's policy may name a strategy for promotions (``rollout:``, Argo Rollouts'
canary vocabulary where it fits)::

    rollout:
      steps:
        - set_weight: 10          # Argo's setWeight: the canary's share of new runs, in %
        - analysis: {min_runs: 50, max_rejection_increase: 0.05}
        - pause: {approvers: [release-managers]}
        - analysis:
            judge: {model: {provider: openai, name: gpt-4o-mini}, criterion: "...", sample: 0.1}
        - set_weight: 50
        - analysis: {}
        - pause: {duration: 1h}
        - set_weight: 100         # the canary becomes the stable revision
      bundle_override: stricter

Steps run in order. ``set_weight`` moves the canary's share of new runs; ``analysis`` judges
the canary against the stable revision from the runs started since the rollout began
(:mod:`kneo.controller.rollouts` holds the rule); ``pause`` waits for a ``duration`` or for
one of ``approvers`` to promote by hand. An analysis' ``judge`` (:class:`JudgeRule`) has a
model grade a sample of finished runs (:mod:`kneo.platform.rollout_judge` judges them, the
analysis counts the FAIL rate). The first step sets a weight, weights only grow, and
the last step is ``set_weight: 100``.

A bundle may carry its own ``rollout:`` when ``bundle_override`` is ``stricter`` and the
bundle's is no looser than the policy's (:func:`looser_parts` finds nothing), never when it
is ``none``.

:func:`looser_parts` is what the ratchet (:mod:`kneo.policy.ratchet`) and the stricter-wins
merge use: which parts of a new rollout are looser than an old one. Contract/trust layer:
pure.
"""

from __future__ import annotations

import re
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from kneo.names import NAME_PATTERN
from kneo.spec.models import ModelSpec, RequestKind

__all__ = [
    "AnalysisRule",
    "JudgeRule",
    "PauseStep",
    "RolloutPolicy",
    "RolloutStep",
    "effective_rollout",
    "looser_parts",
    "parse_duration",
]

_DURATION = re.compile(r"^([1-9][0-9]{0,6})([smhd]?)$")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: str | int) -> int:
    """``"90"``, ``"30m"``, ``"1h"``, ``"2d"`` (or an int of seconds) as seconds."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise ValueError("a duration is at least 1 second")
        return value
    match = _DURATION.match(str(value).strip())
    if match is None:
        raise ValueError(f"{value!r} is not a duration (e.g. 90s, 30m, 1h, 2d)")
    return int(match.group(1)) * _UNIT[match.group(2)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class JudgeRule(_Model):
    """A model judge of a sample of finished runs: each sampled run's input and reply are
    sent to ``model`` (through the environment's grant) with ``criterion``; it answers PASS
    or FAIL. The judge FAIL rate is a rate like the others (canary - stable, Newcombe)."""

    #: The judge model (any provider the environment's grant lets runs reach).
    model: ModelSpec
    #: What a reply must meet, in words.
    criterion: str = Field(min_length=1, max_length=2000)
    #: The share of finished runs judged (a run's bucket of the rollout's hash, stable).
    sample: float = Field(default=0.1, gt=0.0, le=1.0)
    #: Judged runs each side needs before the judge check decides.
    min_judged: int = Field(default=10, ge=1, le=1_000_000)
    #: The judge FAIL rate of the canary minus the stable's, at most.
    max_failure_increase: float = Field(default=0.10, ge=0.0, le=1.0)


class AnalysisRule(_Model):
    """When the canary passes or fails a step against the stable revision.

    Rates (failures per finished run; rejections, edits and escalations per decided request)
    are judged by a one-sided Newcombe bound on the difference canary - stable at
    ``confidence``: fail when its lower bound exceeds the ``max_*_increase`` margin, pass
    when its upper bound is within it, wait otherwise. ``None`` leaves a figure unjudged.
    Latency and cost compare the canary's p95 and mean to the stable's. Nothing is decided
    before each side has ``min_runs`` finished runs.
    """

    #: Finished runs each side needs before anything is decided.
    min_runs: int = Field(default=30, ge=1, le=1_000_000)
    #: One-sided confidence of the bounds (0.95: a 5 % chance to be wrong each way).
    confidence: float = Field(default=0.95, ge=0.5, le=0.9999)
    max_failure_increase: float | None = Field(default=0.05, ge=0.0, le=1.0)
    max_rejection_increase: float | None = Field(default=0.05, ge=0.0, le=1.0)
    max_edit_increase: float | None = Field(default=0.10, ge=0.0, le=1.0)
    max_escalation_increase: float | None = Field(default=0.05, ge=0.0, le=1.0)
    #: Canary p95 latency over stable p95 latency, at most.
    max_latency_ratio: float | None = Field(default=None, ge=1.0)
    #: Canary cost per run over stable cost per run (in money), at most.
    max_cost_ratio: float | None = Field(default=None, ge=1.0)
    #: The kinds of human request whose decisions the rejection, edit and escalation rates
    #: count (``[approval, review]``: what people decide about the agent's work, not the
    #: inputs it asks for); unset: every kind.
    request_kinds: list[RequestKind] | None = Field(default=None, min_length=1)
    #: A model judge of a sample of finished runs (``None``: no judge).
    judge: JudgeRule | None = None


class PauseStep(_Model):
    """Wait: for ``duration`` (``30m``, ``1h``), or until one of ``approvers`` (user or group
    names; empty: the environment's promotion approvers) promotes by hand."""

    duration: int | None = None
    approvers: list[str] = Field(default_factory=list, max_length=50)

    @field_validator("duration", mode="before")
    @classmethod
    def _seconds(cls, value: str | int | None) -> int | None:
        if value is None:
            return None
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("approvers")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not re.match(NAME_PATTERN, name):
                raise ValueError(f"{name!r} is not a user or group name")
        return value


class RolloutStep(_Model):
    """One step: exactly one of ``set_weight`` (or ``setWeight``), ``analysis``, ``pause``."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    set_weight: int | None = Field(default=None, ge=1, le=100, alias="setWeight")
    analysis: AnalysisRule | None = None
    pause: PauseStep | None = None

    @model_validator(mode="after")
    def _one(self) -> RolloutStep:
        named = [n for n in ("set_weight", "analysis", "pause") if getattr(self, n) is not None]
        if len(named) != 1:
            raise ValueError(
                "a step is exactly one of set_weight, analysis, pause "
                f"(has {', '.join(named) or 'none'})"
            )
        return self

    @property
    def kind(self) -> Literal["set_weight", "analysis", "pause"]:
        if self.set_weight is not None:
            return "set_weight"
        return "analysis" if self.analysis is not None else "pause"

    def describe(self) -> str:
        if self.set_weight is not None:
            return f"set_weight {self.set_weight}"
        if self.analysis is not None:
            judged = ", judged" if self.analysis.judge is not None else ""
            return f"analysis (min_runs {self.analysis.min_runs}{judged})"
        pause = self.pause or PauseStep()
        wait = f"{pause.duration}s" if pause.duration else "approval"
        return f"pause ({wait}{' by ' + ', '.join(pause.approvers) if pause.approvers else ''})"


class RolloutPolicy(_Model):
    """``rollout:`` of an environment policy (or of a bundle, within it)."""

    steps: list[RolloutStep] = Field(min_length=1, max_length=50)
    #: ``stricter``: a bundle may bring its own rollout, no looser than this one;
    #: ``none``: the policy's rollout is the only one.
    bundle_override: Literal["none", "stricter"] = "stricter"

    @field_validator("steps")
    @classmethod
    def _ordered(cls, steps: list[RolloutStep]) -> list[RolloutStep]:
        if steps[0].set_weight is None:
            raise ValueError("the first step sets the canary's share (set_weight)")
        if steps[-1].set_weight != 100:
            raise ValueError("the last step is set_weight: 100 (the canary takes over)")
        last = 0
        for index, step in enumerate(steps):
            if step.set_weight is None:
                continue
            if step.set_weight <= last:
                raise ValueError(
                    f"step {index}: set_weight {step.set_weight} is not above the previous {last}"
                )
            if step.set_weight == 100 and index != len(steps) - 1:
                raise ValueError(
                    f"step {index}: set_weight 100 ends the rollout: it is the last step"
                )
            last = step.set_weight
        return steps


# --------------------------------------------------------------------------- strictness

_RATE_LIMITS = (
    "max_failure_increase",
    "max_rejection_increase",
    "max_edit_increase",
    "max_escalation_increase",
    "max_latency_ratio",
    "max_cost_ratio",
)


def _looser_analysis(where: str, old: AnalysisRule, new: AnalysisRule) -> list[str]:
    out = []
    if new.min_runs < old.min_runs:
        out.append(f"{where}.min_runs {old.min_runs} → {new.min_runs}")
    if new.confidence < old.confidence:
        out.append(f"{where}.confidence {old.confidence} → {new.confidence}")
    for name in _RATE_LIMITS:
        was, now = getattr(old, name), getattr(new, name)
        if was is not None and (now is None or now > was):
            shown = "unjudged" if now is None else str(now)
            out.append(f"{where}.{name} {was} → {shown}")
    dropped = sorted(set(old.request_kinds or _ALL_KINDS) - set(new.request_kinds or _ALL_KINDS))
    if dropped:
        out.append(f"{where}.request_kinds no longer counts {', '.join(dropped)}")
    if old.judge is not None:
        out += _looser_judge(f"{where}.judge", old.judge, new.judge)
    return out


def _looser_judge(where: str, old: JudgeRule, new: JudgeRule | None) -> list[str]:
    """A judge removed, sampling fewer runs, deciding on fewer, allowing more, or judging
    otherwise (another model or criterion: no longer the judge the policy vetted)."""
    if new is None:
        return [f"{where} removed (no model judges the runs)"]
    out = []
    if new.sample < old.sample:
        out.append(f"{where}.sample {old.sample} → {new.sample}")
    if new.min_judged < old.min_judged:
        out.append(f"{where}.min_judged {old.min_judged} → {new.min_judged}")
    if new.max_failure_increase > old.max_failure_increase:
        out.append(
            f"{where}.max_failure_increase {old.max_failure_increase} → {new.max_failure_increase}"
        )
    if new.model != old.model:
        out.append(
            f"{where}.model {old.model.provider}/{old.model.name} → "
            f"{new.model.provider}/{new.model.name} (another judge)"
        )
    if new.criterion != old.criterion:
        out.append(f"{where}.criterion changed (another question)")
    return out


_ALL_KINDS: tuple[str, ...] = get_args(RequestKind)


def _looser_pause(where: str, old: PauseStep, new: PauseStep) -> list[str]:
    out = []
    if old.duration is None and new.duration is not None:
        out.append(f"{where} waits {new.duration}s instead of for a person")
    elif old.duration is not None and new.duration is not None and new.duration < old.duration:
        out.append(f"{where}.duration {old.duration}s → {new.duration}s")
    if old.approvers and (not new.approvers or set(new.approvers) - set(old.approvers)):
        out.append(
            f"{where}.approvers {', '.join(old.approvers)} → "
            f"{', '.join(new.approvers) or 'the promotion approvers'}"
        )
    return out


def _match(old: list[RolloutStep], new: list[RolloutStep]) -> list[int] | None:
    """For each gate step (analysis, pause) of ``old``, the index of the step of ``new``
    that keeps it, in order and of the same kind; ``None`` when one is gone."""
    out: list[int] = []
    at = 0
    for step in old:
        if step.set_weight is not None:
            continue
        while at < len(new) and new[at].kind != step.kind:
            at += 1
        if at == len(new):
            return None
        out.append(at)
        at += 1
    return out


def _share_before(steps: list[RolloutStep], index: int) -> int:
    """The canary's share while step ``index`` holds (the last set_weight before it)."""
    share = 0
    for step in steps[:index]:
        share = step.set_weight if step.set_weight is not None else share
    return share


def looser_parts(old: RolloutPolicy | None, new: RolloutPolicy | None) -> list[str]:
    """What of ``new`` is looser than ``old`` (``None``: no rollout, 100 % at once): a gate
    step (analysis, pause) removed, one judging more leniently, or one reached at a larger
    share of runs; ``bundle_override`` from ``none`` to ``stricter``. Empty: ``new`` is as
    strict or stricter (steps may be added, and shares lowered)."""
    if old is None:
        return []
    if new is None:
        return ["rollout removed (a promotion takes every run at once)"]
    out = []
    if old.bundle_override == "none" and new.bundle_override != "none":
        out.append("rollout.bundle_override none → stricter")
    kept = _match(old.steps, new.steps)
    if kept is None:
        return [*out, "rollout: a step that judges (analysis or pause) was removed"]
    gates = [i for i, s in enumerate(old.steps) if s.set_weight is None]
    for old_index, new_index in zip(gates, kept, strict=True):
        was, now = old.steps[old_index], new.steps[new_index]
        where = f"rollout.steps[{new_index}]"
        if was.analysis is not None and now.analysis is not None:
            out += _looser_analysis(f"{where}.analysis", was.analysis, now.analysis)
        if was.pause is not None and now.pause is not None:
            out += _looser_pause(f"{where}.pause", was.pause, now.pause)
        before, after = _share_before(old.steps, old_index), _share_before(new.steps, new_index)
        if after > before:
            out.append(f"{where} ({now.kind}) reached at {after} % instead of {before} %")
    return out


def effective_rollout(
    policy: RolloutPolicy | None, bundle: RolloutPolicy | None
) -> RolloutPolicy | None:
    """The rollout a promotion follows: the bundle's where the policy lets it bring one and
    it is no looser, else the policy's. Raises ``ValueError`` naming why a bundle's is
    refused (the controller rejects the revision with it)."""
    if bundle is None:
        return policy
    if policy is not None and policy.bundle_override == "none":
        raise ValueError("rollout: the environment's policy lets no bundle bring its own rollout")
    looser = looser_parts(policy, bundle)
    if looser:
        raise ValueError(f"rollout: the bundle's is looser than the policy's: {'; '.join(looser)}")
    return bundle
