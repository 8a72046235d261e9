"""What an eval run writes: JUnit XML (for every CI system), a markdown summary, and the
comparison with a baseline result (cases that newly fail or newly pass). Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from xml.etree import ElementTree as ET


@dataclass(frozen=True)
class Comparison:
    """How a result differs from a baseline result of the same suite."""

    newly_failing: list[str] = field(default_factory=list)
    newly_passing: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    baseline_rate: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "newly_failing": self.newly_failing,
            "newly_passing": self.newly_passing,
            "added": self.added,
            "baseline_pass_rate": self.baseline_rate,
        }


def compare(result: Mapping[str, Any], baseline: Mapping[str, Any]) -> Comparison:
    """Cases failing now that passed in ``baseline`` and the other way round (both are
    :meth:`SuiteResult.to_dict` documents); cases the baseline did not have are ``added``."""
    before = {c["id"]: c["outcome"] for c in baseline.get("cases") or []}
    failing, passing, added = [], [], []
    for case in result.get("cases") or []:
        old = before.get(case["id"])
        if old is None:
            added.append(case["id"])
        elif old == "passed" and case["outcome"] != "passed":
            failing.append(case["id"])
        elif old != "passed" and case["outcome"] == "passed":
            passing.append(case["id"])
    rate = baseline.get("pass_rate")
    return Comparison(failing, passing, added, float(rate) if rate is not None else None)


def junit_xml(result: Mapping[str, Any]) -> str:
    """One ``<testsuite>`` with a ``<testcase>`` per case; a failed case has a ``<failure>``
    whose message is its first failure and whose text lists them all."""
    cases = result.get("cases") or []
    failed = [c for c in cases if c["outcome"] != "passed"]
    root = ET.Element(
        "testsuites",
        name="kneo eval",
        tests=str(len(cases)),
        failures=str(len(failed)),
        time=f"{result.get('seconds', 0):.3f}",
    )
    suite = ET.SubElement(
        root,
        "testsuite",
        name=str(result["suite"]),
        tests=str(len(cases)),
        failures=str(len(failed)),
        errors="0",
        skipped="0",
        time=f"{result.get('seconds', 0):.3f}",
    )
    props = ET.SubElement(suite, "properties")
    for name in ("digest", "suite_digest", "environment", "pass_rate", "kneo_version"):
        ET.SubElement(props, "property", name=name, value=str(result.get(name)))
    for case in cases:
        element = ET.SubElement(
            suite,
            "testcase",
            classname=str(result["suite"]),
            name=str(case["id"]),
            time=f"{case.get('seconds', 0):.3f}",
        )
        if case["outcome"] != "passed":
            failures = case.get("failures") or ["failed"]
            failure = ET.SubElement(element, "failure", message=failures[0], type="EvalFailure")
            failure.text = "\n".join(failures)
        if case.get("output"):
            ET.SubElement(element, "system-out").text = str(case["output"])
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, "unicode") + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_summary(result: Mapping[str, Any], comparison: Comparison | None = None) -> str:
    """A summary for a pull request comment or ``$GITHUB_STEP_SUMMARY``."""
    rate = float(result["pass_rate"])
    verdict = "passed" if result["ok"] else "FAILED"
    lines = [
        f"## Eval suite `{result['suite']}`: {verdict}",
        "",
        f"{result['passed']}/{result['total']} cases passed ({rate:.0%}; threshold "
        f"{float(result['pass_threshold']):.0%}) against `{result['spec_path']}`"
        + (f" for `{result['environment']}`" if result.get("environment") else "")
        + f", digest `{result['digest']}`.",
        "",
    ]
    if comparison is not None:
        if comparison.newly_failing:
            lines.append(
                "**Newly failing:** " + ", ".join(f"`{c}`" for c in comparison.newly_failing)
            )
        if comparison.newly_passing:
            lines.append(
                "**Newly passing:** " + ", ".join(f"`{c}`" for c in comparison.newly_passing)
            )
        if not comparison.newly_failing and not comparison.newly_passing:
            lines.append("No change from the baseline.")
        lines.append("")
    lines += ["| case | outcome | why |", "| --- | --- | --- |"]
    for case in result.get("cases") or []:
        why = "; ".join(case.get("failures") or [])
        mark = "pass" if case["outcome"] == "passed" else "**fail**"
        lines.append(f"| `{case['id']}` | {mark} | {_cell(why)} |")
    return "\n".join(lines) + "\n"
