"""The eval gate: does a bundle carry a passing, signed result of every suite its
environment requires (``promotion.require_evals``)? Pure; the controller's planner asks it
for each revision before promoting (docs/evals.md)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kneo.bundle.format import EvalAttestation
from kneo.policy.environment import EvalRequirement


@dataclass(frozen=True)
class EvalVerdict:
    """One required suite against what the bundle attests."""

    suite: str
    required: float
    #: The attested pass rate; ``None`` when the bundle carries no result of the suite.
    rate: float | None
    #: Failing case ids in the attested result.
    regressions: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return self.rate is not None and self.rate + 1e-9 >= self.required

    def message(self) -> str:
        """What a status condition says: the suite, its rate and the rate required."""
        need = f"{self.required:.0%}"
        if self.rate is None:
            return f"eval suite {self.suite!r}: no signed result for this digest (requires {need})"
        failing = f"; failing: {', '.join(self.regressions)}" if self.regressions else ""
        verb = "passed" if self.passed else "failed"
        return f"eval suite {self.suite!r} {verb}: {self.rate:.0%} (requires {need}){failing}"

    def to_dict(self) -> dict[str, object]:
        return {
            "suite": self.suite,
            "min_pass_rate": self.required,
            "pass_rate": self.rate,
            "passed": self.passed,
            "regressions": list(self.regressions),
        }


def judge_evals(
    requirements: Sequence[EvalRequirement],
    attestations: Sequence[EvalAttestation],
    digest: str,
) -> list[EvalVerdict]:
    """A verdict per required suite, from the attestations that name ``digest`` (the last
    one of a suite counts)."""
    verdicts = []
    for requirement in requirements:
        found = [a for a in attestations if a.suite == requirement.suite and a.digest == digest]
        if not found:
            verdicts.append(EvalVerdict(requirement.suite, requirement.min_pass_rate, None))
            continue
        latest = found[-1]
        verdicts.append(
            EvalVerdict(
                requirement.suite,
                requirement.min_pass_rate,
                latest.pass_rate,
                tuple(latest.regressions()),
            )
        )
    return verdicts


def eval_summary(
    requirements: Sequence[EvalRequirement],
    attestations: Sequence[EvalAttestation],
    digest: str,
) -> list[dict[str, object]]:
    """Per suite (required ones first, then any other attested), what a promotion's approvers
    see: the attested rate, the failing cases, the required rate and whether it passes."""
    rows = [v.to_dict() for v in judge_evals(requirements, attestations, digest)]
    required = {r.suite for r in requirements}
    for attestation in reversed(attestations):  # the last result of a suite counts
        if attestation.suite in required or attestation.digest != digest:
            continue
        required.add(attestation.suite)
        rows.append(
            {
                "suite": attestation.suite,
                "min_pass_rate": None,
                "pass_rate": attestation.pass_rate,
                "passed": None,
                "regressions": attestation.regressions(),
            }
        )
    return rows
