"""Eval suites: cases with expectations, run through the engine in an isolated store, their
results bound to a spec digest (signed into bundles as attestations, checked by the
controller's ``require_evals`` gate). See docs/evals.md."""

from __future__ import annotations

from kneo.evals.report import Comparison, compare, junit_xml, markdown_summary
from kneo.evals.runner import CaseResult, SuiteResult, check_case, run_suite, suite_digest
from kneo.evals.suite import EvalCase, EvalSuite, EvalSuiteError, load_suite, parse_suite

__all__ = [
    "CaseResult",
    "Comparison",
    "EvalCase",
    "EvalSuite",
    "EvalSuiteError",
    "SuiteResult",
    "check_case",
    "compare",
    "junit_xml",
    "load_suite",
    "markdown_summary",
    "parse_suite",
    "run_suite",
    "suite_digest",
]
