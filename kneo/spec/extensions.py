"""Spec v1 models of an agent's extensions: skills and middleware.

A *skill* is a named piece of know-how a spec declares once (``skills:``) and agents switch
on by name (``agent.skills``): its instructions join the agent's system prompt and its tools
join the agent's selection, so every policy and diagnostic sees them as the agent's own.

*Middleware* is an ordered list on an agent (``agent.middleware``), applied around the
agent's model and tool calls in the order written. Each kind is typed by its ``type``:
``guardrail``, ``memory``, ``tool_policy`` and ``redaction``. A ``function`` a middleware
names is a ``module:function`` ref like a function step's: the trust kernel resolves it
with the run's grant (``E_FUNCTION_NOT_ALLOWED`` at validate and at run).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, Self

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


#: The longest a skill's instructions may be (characters).
SKILL_INSTRUCTIONS_CHARS = 20_000


class SkillSpec(_Model):
    """A declared skill: instructions for the system prompt and the tools that go with them."""

    description: str = ""
    instructions: str = Field(min_length=1, max_length=SKILL_INSTRUCTIONS_CHARS)
    tools: list[str] = Field(default_factory=list)


class ProjectSkill(_Model):
    """A skill the project declares for every spec (``skills.<name>``): what a spec's own
    ``skills:`` entry holds, with the instructions written here or kept in a file of the
    project (``instructions_file``, relative to the project root, read through the trust
    kernel's file door: :func:`~kneo.kernel.read_project_file`)."""

    description: str = Field(default="", max_length=2000)
    instructions: str | None = Field(
        default=None, min_length=1, max_length=SKILL_INSTRUCTIONS_CHARS
    )
    instructions_file: str | None = Field(default=None, min_length=1, max_length=1024)
    tools: list[str] = Field(default_factory=list, max_length=100)

    @model_validator(mode="after")
    def _one_source(self) -> ProjectSkill:
        if (self.instructions is None) == (self.instructions_file is None):
            raise ValueError("set exactly one of instructions and instructions_file")
        return self


class SkillsOverlay(_Model):
    """A run's change to its agents' skills at start: ``add`` switches declared skills on,
    ``remove`` switches skills off; ``agents`` limits both to these agents (default: all)."""

    add: list[str] = Field(default_factory=list, max_length=100)
    #: ``disable`` is the original platform's word for it (its clients send that).
    remove: list[str] = Field(
        default_factory=list,
        max_length=100,
        validation_alias=AliasChoices("remove", "disable"),
    )
    agents: list[str] | None = Field(default=None, max_length=100)

    @property
    def empty(self) -> bool:
        return not self.add and not self.remove


def _check_regex(value: str | None) -> str | None:
    if value is not None:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from exc
    return value


MiddlewareStage = Literal["input", "output", "tool_call", "tool_result"]


class GuardrailMiddleware(_Model):
    """Blocks what matches at its ``stage``: ``input`` and ``output`` fail the step
    (``guardrail_blocked``); ``tool_call`` refuses the call and ``tool_result`` withholds the
    result, the model being told why. ``pattern`` (a regex) or ``function`` (a
    ``module:function`` taking the text and returning a reason to block, or ``None``)."""

    type: Literal["guardrail"]
    name: str = Field(default="guardrail", min_length=1, max_length=100)
    stage: MiddlewareStage = "input"
    pattern: str | None = Field(default=None, max_length=2_000)
    function: str | None = None
    ignore_case: bool = True

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        return _check_regex(value)

    @model_validator(mode="after")
    def _one_test(self) -> Self:
        if (self.pattern is None) == (self.function is None):
            raise ValueError("a guardrail needs exactly one of pattern and function")
        return self


class MemoryMiddleware(_Model):
    """Sends the model only the system prompt and the newest ``max_messages`` other messages
    of the transcript (the transcript itself is kept whole, so a resume loses nothing)."""

    type: Literal["memory"]
    max_messages: int = Field(ge=1, le=10_000)


class ToolPolicyMiddleware(_Model):
    """Refuses tool calls: a tool not in ``allow`` (when given), in ``deny``, or one the
    ``function`` (``module:function`` taking the tool name and arguments, returning a
    reason to refuse or ``None``) refuses. The model receives the refusal as the result."""

    type: Literal["tool_policy"]
    allow: list[str] | None = None
    deny: list[str] = Field(default_factory=list)
    function: str | None = None


RedactionStage = Literal["input", "output", "tool_result"]


def _every_stage() -> list[RedactionStage]:
    return ["input", "output", "tool_result"]


class RedactionMiddleware(_Model):
    """Replaces what matches ``patterns`` (and, with ``builtin``, what Kneo's own redaction
    recognises: secrets and personal data) at each of its ``stages`` before the text is recorded or sent;
    ``function`` (``module:function`` taking and returning text) runs after them."""

    type: Literal["redaction"]
    stages: list[RedactionStage] = Field(default_factory=_every_stage, min_length=1)
    patterns: list[str] = Field(default_factory=list, max_length=100)
    builtin: bool = True
    replacement: str = Field(default="[REDACTED]", max_length=100)
    function: str | None = None

    @field_validator("patterns")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        for pattern in value:
            _check_regex(pattern)
        return value


Middleware = Annotated[
    GuardrailMiddleware | MemoryMiddleware | ToolPolicyMiddleware | RedactionMiddleware,
    Field(discriminator="type"),
]
