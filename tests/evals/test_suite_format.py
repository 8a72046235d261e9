"""The eval suite format: what it accepts, what it refuses (naming file and field), its
limits as an untrusted document, and the shipped JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator

from kneo.documents import DocumentError
from kneo.evals import EvalSuiteError, check_case, load_suite, parse_suite
from kneo.evals.suite import SCHEMA_FILE, render_schema
from tests.evals.conftest import ROOT, SUITE

CASE = {"id": "one", "input": "hi"}


def _error(data: object) -> EvalSuiteError:
    with pytest.raises(EvalSuiteError) as caught:
        parse_suite(data, source="suite.yaml")
    return caught.value


@pytest.mark.parametrize(
    ("data", "path", "words"),
    [
        ({"suite": "s", "cases": [{**CASE, "expekt": {}}]}, "cases.0.expekt", "Extra inputs"),
        ({"suite": "s", "cases": []}, "cases", "at least 1"),
        ({"suite": "Bad Name", "cases": [CASE]}, "suite", "pattern"),
        ({"suite": "s", "cases": [CASE, CASE]}, "cases", "appears twice"),
        ({"suite": "s", "pass_threshold": 1.5, "cases": [CASE]}, "pass_threshold", "less"),
        (
            {"suite": "s", "cases": [{**CASE, "expect": {"output": {"matches": "("}}}]},
            "cases.0.expect.output.matches",
            "regular expression",
        ),
        (
            {"suite": "s", "cases": [{**CASE, "expect": {"human": "coffee"}}]},
            "cases.0.expect.human",
            "approval",
        ),
        ({"suite": "s", "cases": [{**CASE, "expect": {"judge": "polite"}}]}, "judge", "no judge"),
        ({"version": "v9", "suite": "s", "cases": [CASE]}, "version", "unsupported"),
    ],
)
def test_a_bad_suite_names_the_file_and_field(data: object, path: str, words: str) -> None:
    error = _error(data)
    assert error.code == "E_EVAL_SUITE"
    assert error.details["path"] == path
    assert error.message.startswith("suite.yaml: ")
    assert words in error.message


def test_not_a_mapping() -> None:
    assert "must be a mapping" in _error(["a"]).message


def test_a_suite_file_is_bounded_like_every_untrusted_document(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [
        f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]"
        for i in range(1, 10)
    ]
    bomb.write_text("\n".join(lines) + "\n")
    with pytest.raises(DocumentError) as caught:
        load_suite(bomb)
    assert caught.value.code == "E_DOCUMENT_TOO_COMPLEX"
    deep = tmp_path / "deep.yaml"
    deep.write_text("[" * 100 + "]" * 100)
    with pytest.raises(DocumentError) as deep_error:
        load_suite(deep)
    assert deep_error.value.code == "E_DOCUMENT_TOO_DEEP"


def test_the_schema_ships_in_the_package() -> None:
    text = render_schema()
    assert (ROOT / "schemas" / SCHEMA_FILE).read_text() == text, (
        f"schemas/{SCHEMA_FILE} is stale: run 'python scripts/build_schemas.py'"
    )
    schema = json.loads(text)
    Draft202012Validator.check_schema(schema)
    example = yaml.safe_load((ROOT / SUITE).read_text())
    Draft202012Validator(schema).validate(example)
    missing_input = {"suite": "s", "cases": [{"id": "x"}]}
    assert list(Draft202012Validator(schema).iter_errors(missing_input)) != []


def test_expectations_each_fail_in_words() -> None:
    suite = parse_suite(
        {
            "suite": "s",
            "cases": [
                {
                    **CASE,
                    "expect": {
                        "output": {
                            "contains": "refund",
                            "not_contains": ["TODO"],
                            "json_schema": {"type": "object"},
                        },
                        "tools": [
                            {"name": "lookup", "arguments": {"id": "A1"}},
                            {"name": "email", "called": False},
                        ],
                        "human": "approval",
                        "limits": {
                            "max_total_tokens": 10,
                            "max_tool_calls": 1,
                            "max_model_calls": 1,
                        },
                    },
                }
            ],
        },
        source="suite.yaml",
    )
    failures = check_case(
        suite.cases[0].expect,
        status="succeeded",
        output="TODO later",
        tool_calls=[
            {"name": "lookup", "arguments": {"id": "B2"}},
            {"name": "email", "arguments": {}},
        ],
        usage={"input_tokens": 8, "output_tokens": 5, "model_calls": 2},
        pauses=[],
    )
    assert failures == [
        "status is succeeded, expected paused",
        "no approval pause (reached: none)",
        "output does not contain 'refund'",
        "output contains 'TODO'",
        "output is not JSON (Expecting value (column 1))",
        'tool lookup not called with {"id": "A1"}; called with {"id": "B2"}',
        "tool email called 1 time(s), expected none",
        "total tokens 13 over the limit 10",
        "model calls 2 over the limit 1",
        "tool calls 2 over the limit 1",
    ]


def test_the_judge_grades_only_what_passed_the_rest() -> None:
    suite = parse_suite(
        {
            "suite": "s",
            "judge": {"provider": "dummy", "script": [{"text": "FAIL"}]},
            "cases": [{**CASE, "expect": {"judge": "is polite"}}],
        },
        source="suite.yaml",
    )
    asked: list[str] = []

    def judge(criterion: str, transcript: str) -> tuple[bool, str]:
        asked.append(criterion)
        return False, "FAIL: rude"

    expect = suite.cases[0].expect
    assert check_case(
        expect,
        status="succeeded",
        output="go away",
        tool_calls=[],
        usage={},
        pauses=[],
        judge=judge,
    ) == ["judge: 'is polite' not met (FAIL: rude)"]
    assert check_case(
        expect, status="failed", output="", tool_calls=[], usage={}, pauses=[], judge=judge
    )[0].startswith("status")
    assert asked == ["is polite"]
