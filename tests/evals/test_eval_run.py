"""``kneo eval run``: the example suite through the real engine, JUnit XML read by a real
JUnit parser, a prompt change that breaks two cases, and ``--baseline``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from junitparser import Failure, JUnitXml

from kneo.evals import load_suite, run_suite
from tests.evals.conftest import ROOT, SPEC, SUITE, CliResult, break_the_prompt

Kneo = Callable[..., CliResult]


def test_the_example_suite_has_ten_offline_cases_and_passes(project: Path, kneo: Kneo) -> None:
    suite = load_suite(ROOT / SUITE)
    assert len(suite.cases) >= 10
    result = kneo("eval", "run", SPEC, "--suite", SUITE, "--junit", "out.xml", "--json")
    assert result.exit_code == 0, result.stdout + result.stderr
    document = json.loads(result.stdout)
    assert document["passed"] == document["total"] == len(suite.cases)
    assert document["digest"].startswith("sha256:")
    xml = JUnitXml.fromfile("out.xml")
    cases = [case for test_suite in xml for case in test_suite]
    assert sorted(c.name for c in cases) == sorted(c.id for c in suite.cases)
    assert all(case.is_passed for case in cases)


def test_a_prompt_change_that_breaks_two_cases_exits_1_naming_them(
    project: Path, kneo: Kneo
) -> None:
    break_the_prompt(project)
    result = kneo(
        "eval", "run", SPEC, "--suite", SUITE, "--junit", "out.xml", "--markdown", "summary.md"
    )
    assert result.exit_code == 1
    assert "9/11" in result.stderr
    failing = [line.split()[0] for line in result.stdout.splitlines() if " FAIL " in line]
    assert failing == ["refund-window", "ticket-opened"]
    xml = JUnitXml.fromfile("out.xml")
    failed = {
        case.name: case.result[0] for test_suite in xml for case in test_suite if not case.is_passed
    }
    assert set(failed) == {"refund-window", "ticket-opened"}
    assert all(isinstance(f, Failure) for f in failed.values())
    assert "does not contain '30 days'" in failed["refund-window"].message
    summary = Path("summary.md").read_text()
    assert "FAILED" in summary and "| `ticket-opened` | **fail** |" in summary


def test_baseline_ref_shows_newly_failing_cases(project: Path, kneo: Kneo) -> None:
    break_the_prompt(project)
    result = kneo("eval", "run", SPEC, "--suite", SUITE, "--baseline", "HEAD", "--json")
    assert result.exit_code == 1
    baseline = json.loads(result.stdout)["baseline"]
    assert baseline["newly_failing"] == ["refund-window", "ticket-opened"]
    assert baseline["newly_passing"] == []
    assert baseline["baseline_pass_rate"] == 1.0
    # nothing of the baseline's scratch copy is left beside the spec
    assert sorted(p.name for p in (project / "examples").iterdir() if p.name.startswith(".")) == []


def test_baseline_results_file_shows_newly_passing_cases(project: Path, kneo: Kneo) -> None:
    spec = project / SPEC
    good = spec.read_text()
    break_the_prompt(project)
    assert kneo("eval", "run", SPEC, "--suite", SUITE, "--results", "before.json").exit_code == 1
    spec.write_text(good)
    result = kneo("eval", "run", SPEC, "--suite", SUITE, "--baseline", "before.json")
    assert result.exit_code == 0
    assert "newly passing: refund-window, ticket-opened" in result.stderr


def test_threshold_decides_the_exit_code(project: Path, kneo: Kneo) -> None:
    break_the_prompt(project)
    assert kneo("eval", "run", SPEC, "--suite", SUITE, "--threshold", "0.8").exit_code == 0
    assert kneo("eval", "run", SPEC, "--suite", SUITE, "--threshold", "0.9").exit_code == 1


def test_parallel_and_serial_runs_agree(project: Path) -> None:
    suite = load_suite(SUITE)
    serial = run_suite(suite, SPEC, workers=1).to_dict()
    parallel = run_suite(suite, SPEC, workers=4).to_dict()
    assert [c["id"] for c in serial["cases"]] == [c.id for c in suite.cases]
    assert [(c["id"], c["outcome"], c["usage"]) for c in serial["cases"]] == [
        (c["id"], c["outcome"], c["usage"]) for c in parallel["cases"]
    ]
    assert serial["digest"] == parallel["digest"]


def test_runs_stay_out_of_the_project_store(project: Path, kneo: Kneo) -> None:
    assert kneo("eval", "run", SPEC, "--suite", SUITE).exit_code == 0
    assert not (project / ".kneo" / "kneo_runs.sqlite").exists()


def test_the_digest_is_the_signed_bundles_digest(project: Path, kneo: Kneo) -> None:
    result = json.loads(
        kneo("eval", "run", SPEC, "--suite", SUITE, "--env", "prod", "--json").stdout
    )
    from kneo.bundle.digest import spec_digest
    from kneo.spec.loader import load_spec
    from kneo.spec.pinning import pin_code
    from kneo.spec.project import ProjectContext

    context = ProjectContext.discover(env="prod")
    loaded = load_spec(SPEC, env="prod", project=context.config)
    signed = pin_code(loaded.spec, loaded.data, loaded.base_dir)  # what a bundle signs
    assert result["digest"] == spec_digest(signed)
    assert result["environment"] == "prod"


def test_a_judge_that_answers_fail_fails_the_case_through_its_provider(project: Path) -> None:
    suite = load_suite(SUITE)
    strict = suite.model_copy(
        update={
            "judge": suite.judge.model_copy(update={"script": []}),  # type: ignore[union-attr]
            "cases": [c for c in suite.cases if c.id == "polite"],
        }
    )
    [case] = run_suite(strict, SPEC, workers=1).cases
    # an empty dummy script echoes: the judge's reply starts with "echo:", not PASS
    assert not case.passed
    assert case.failures[0].startswith("judge: 'The reply thanks the customer")


def test_scripting_an_agent_the_spec_lacks_fails_that_case_with_the_names(project: Path) -> None:
    from kneo.evals import parse_suite

    suite = parse_suite(
        {
            "suite": "s",
            "cases": [{"id": "x", "input": "hi", "scripts": {"ghost": [{"text": "a"}]}}],
        },
        source="s.yaml",
    )
    [case] = run_suite(suite, SPEC, workers=1).cases
    assert case.status == "error" and case.error == "E_EVAL_SUITE"
    assert "scripts names agent 'ghost'" in case.failures[0]


def test_a_bad_baseline_is_refused_before_the_suite_runs(project: Path, kneo: Kneo) -> None:
    for ref in ("no-such-ref", "missing.json"):
        result = kneo("eval", "run", SPEC, "--suite", SUITE, "--baseline", ref)
        assert result.exit_code != 0 and "error[invalid_request]: --baseline" in result.stderr
        assert "case" not in result.stdout  # no table: nothing ran


def test_the_research_pipeline_suite_passes_offline_with_its_dev_overlay(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A second example suite: a sequential pipeline (two agent steps, a function step)
    resolved with its dev overlay; one case scripts a plan-act search."""
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("KNEO_SERV_DATABASE_URL", raising=False)
    suite = load_suite("examples/evals/research_agent.eval.yaml")
    result = run_suite(suite, "examples/research_agent.yaml", environment="dev", workers=2)
    assert result.environment == "dev"
    assert [c.failures for c in result.cases] == [[]] * len(suite.cases)
    [searched] = [c for c in result.cases if c.case_id == "searches-when-scripted-to"]
    assert searched.tool_calls == [{"name": "web_search", "arguments": {"query": "battery market"}}]


def test_call_ids_that_repeat_across_steps_are_different_calls() -> None:
    from kneo.evals.runner import observe

    events = [
        {
            "event_type": "tool_call_started",
            "step_id": step,
            "payload": {"tool_name": "lookup", "tool_call_id": "call_0_0", "arguments": {"n": i}},
        }
        for i, step in enumerate(("retrieve", "analyze"))
    ]
    events.append({**events[0], "event_type": "tool_call_completed"})  # same call, finished
    seen = observe(events, {})
    assert seen.tool_calls == [
        {"name": "lookup", "arguments": {"n": 0}},
        {"name": "lookup", "arguments": {"n": 1}},
    ]
