"""Eval suite format v1: a YAML file of cases beside a spec, each an input and expectations.

```yaml
version: v1
suite: support-agent          # the name a gate (``require_evals``) refers to
pass_threshold: 1.0           # the pass rate ``kneo eval run`` needs for exit 0
judge: {provider: dummy, name: judge, script: [{text: PASS}]}   # model-graded criteria
cases:
  - id: refund-policy
    input: "Can I get a refund?"
    script: [{text: "Refunds take 5 days."}]   # the dummy model's replies for this case
    expect:
      status: succeeded
      output: {contains: [refund], matches: "\\d+ days"}
      tools: [{name: lookup_order, arguments: {order_id: A1}}, {name: refund, called: false}]
      limits: {max_total_tokens: 500, max_tool_calls: 2}
      judge: "The reply is polite"
```

A suite file is untrusted input like a spec: it is read through :mod:`kneo.documents`
(size, depth and alias limits) and every error names the file and the field. The JSON Schema
(``kneo/schemas/eval_suite.schema.json``) is generated from these models.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from kneo.documents import load_yaml_file
from kneo.errors import ErrorCode, SpecError
from kneo.names import NAME_PATTERN
from kneo.spec.models import DummyScriptTurn, ModelSpec, PauseKind

SUITE_VERSION: Literal["v1"] = "v1"

RunStatusName = Literal["succeeded", "failed", "paused", "cancelled", "timed_out"]


class EvalSuiteError(SpecError):
    """An eval suite file that cannot be read or does not match the format."""

    code = ErrorCode.E_EVAL_SUITE


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OutputExpectation(_Model):
    """What the run's final output text must (not) hold."""

    contains: list[str] = Field(default_factory=list, description="Substrings all present")
    not_contains: list[str] = Field(default_factory=list, description="Substrings all absent")
    matches: str | None = Field(default=None, description="A regular expression (re.search)")
    equals: str | None = None
    json_schema: dict[str, Any] | None = Field(
        default=None, description="The output parses as JSON valid against this JSON Schema"
    )

    @field_validator("contains", "not_contains", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("matches")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from None
        return value

    @field_validator("json_schema")
    @classmethod
    def _schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            from jsonschema import Draft202012Validator
            from jsonschema.exceptions import SchemaError

            try:
                Draft202012Validator.check_schema(value)
            except SchemaError as exc:
                raise ValueError(f"not a JSON Schema: {exc.message}") from None
        return value


class ToolExpectation(_Model):
    """A tool the model called (or did not), with at least these arguments."""

    name: str = Field(min_length=1)
    called: bool = True
    #: Every key here must be in one call's arguments with an equal value (others may be too).
    arguments: dict[str, Any] | None = None


class Limits(_Model):
    """Upper bounds on what the run used (tokens as the providers reported them)."""

    max_input_tokens: int | None = Field(default=None, ge=0)
    max_output_tokens: int | None = Field(default=None, ge=0)
    max_total_tokens: int | None = Field(default=None, ge=0)
    max_model_calls: int | None = Field(default=None, ge=0)
    max_tool_calls: int | None = Field(default=None, ge=0)


class Expectations(_Model):
    status: RunStatusName | None = Field(
        default=None, description="The run's status (default: succeeded, or paused with human)"
    )
    output: OutputExpectation | None = None
    tools: list[ToolExpectation] = Field(default_factory=list)
    human: PauseKind | None = Field(default=None, description="The run paused for this kind")
    limits: Limits | None = None
    judge: str | None = Field(
        default=None, min_length=1, description="A criterion the suite's judge model grades"
    )


class EvalCase(_Model):
    id: str = Field(pattern=NAME_PATTERN)
    description: str | None = None
    input: str
    target: Literal["workflow", "agent"] = "workflow"
    #: The ``dummy`` model's replies for the spec's ``agent`` (its provider becomes ``dummy``).
    script: list[DummyScriptTurn] | None = None
    #: The same per agent of ``components.agents`` (name -> replies).
    scripts: dict[str, list[DummyScriptTurn]] = Field(default_factory=dict)
    #: Merged into the spec for this case only, as an environment overlay is.
    overrides: dict[str, Any] = Field(default_factory=dict)
    expect: Expectations = Field(default_factory=Expectations)


class EvalSuite(_Model):
    version: Literal["v1"] = SUITE_VERSION
    suite: str = Field(pattern=NAME_PATTERN, description="The name a gate refers to")
    description: str | None = None
    pass_threshold: float = Field(default=1.0, ge=0.0, le=1.0)
    #: The model that grades ``expect.judge`` criteria: it answers PASS or FAIL.
    judge: ModelSpec | None = None
    cases: list[EvalCase] = Field(min_length=1)

    @field_validator("cases")
    @classmethod
    def _unique_ids(cls, cases: list[EvalCase]) -> list[EvalCase]:
        seen: set[str] = set()
        for case in cases:
            if case.id in seen:
                raise ValueError(f"case id {case.id!r} appears twice")
            seen.add(case.id)
        return cases

    def needs_judge(self) -> bool:
        return any(case.expect.judge for case in self.cases)


def parse_suite(data: Any, *, source: str) -> EvalSuite:
    """A suite from decoded YAML; errors name ``source`` and the field."""
    if not isinstance(data, dict):
        raise EvalSuiteError(f"{source}: an eval suite must be a mapping", file=source)
    if data.get("version", SUITE_VERSION) != SUITE_VERSION:
        raise EvalSuiteError(
            f"{source}: unsupported eval suite version {data.get('version')!r}; this Kneo "
            f"reads {SUITE_VERSION!r}",
            file=source,
            path="version",
        )
    try:
        suite = EvalSuite.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(root)"
        raise EvalSuiteError(
            f"{source}: {where}: {first['msg']}", file=source, path=where
        ) from None
    if suite.needs_judge() and suite.judge is None:
        raise EvalSuiteError(
            f"{source}: a case has expect.judge but the suite has no judge model",
            file=source,
            path="judge",
        )
    return suite


def load_suite(path: str | Path) -> EvalSuite:
    """Read and check a suite file (bounded like every untrusted document)."""
    source = str(path)
    return parse_suite(load_yaml_file(path, what="eval suite"), source=source)


def suite_json_schema() -> dict[str, Any]:
    """The JSON Schema of suite v1 (``kneo/schemas/eval_suite.schema.json``)."""
    schema = EvalSuite.model_json_schema(by_alias=True, mode="validation")
    output = schema["$defs"]["OutputExpectation"]["properties"]
    for name in ("contains", "not_contains"):  # one string is a list of one
        listed = {k: v for k, v in output[name].items() if k not in ("default", "title")}
        output[name] = {
            "anyOf": [{"type": "string"}, listed],
            "title": output[name].get("title"),
            "description": listed.pop("description", None),
        }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://kneo.dev/schemas/eval_suite.schema.json",
        "title": "Kneo eval suite v1",
        **{k: v for k, v in schema.items() if k != "title"},
    }


#: The schema's file in the published ``schemas/`` and the package's copy of it (served at
#: ``/schemas/``, copied by ``kneo init``).
SCHEMA_FILE = "eval_suite.schema.json"


def render_schema() -> str:
    import json

    return json.dumps(suite_json_schema(), indent=2) + "\n"


if __name__ == "__main__":  # pragma: no cover - run by hand; a test checks the files
    import sys

    # a checkout: scripts/build_schemas.py writes schemas/ and builds the package's copy
    for folder in [Path(a) for a in sys.argv[1:]]:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / SCHEMA_FILE).write_text(render_schema(), encoding="utf-8")
        print(folder / SCHEMA_FILE)
