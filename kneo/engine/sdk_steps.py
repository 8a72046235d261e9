"""The SDK's participants: human, function and agent steps and the Python tools an agent
brings, each the spec component it becomes (a built workflow *is* a spec), and the checks
that refuse a wrong field when the step is built rather than at run time."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from kneo.engine.human import HumanResolver
from kneo.errors import InvalidRequest, SpecError
from kneo.kernel import ref_of
from kneo.spec.models import (
    AgentSpec,
    HumanComponent,
    HumanReview,
)
from kneo.spec.yaml_io import validation_error_to_spec_error

_M = TypeVar("_M", bound=BaseModel)
#: A dynamic prompt: the earlier outputs and the run's metadata -> the prompt text.
PromptBuilder = Callable[[list["SdkMessage"], dict[str, Any]], str]


@dataclass(frozen=True)
class SdkMessage:
    """An earlier step's output as the SDK's dynamic prompts see it (``messages[-1].content``)."""

    role: str
    content: str


@dataclass(frozen=True)
class HumanInTheLoopStep:
    name: str
    prompt: str | PromptBuilder
    resolver: HumanResolver | None = None
    assignee: str | None = None
    options: tuple[str, ...] = ()
    timeout_seconds: int | None = None
    on_timeout: str = "fail"
    #: Decisions the step accepts (``None``: derived from its options, as in YAML).
    decisions: tuple[str, ...] | None = None
    #: who the request passes to when ``on_timeout="escalate"`` fires
    escalate_to: str | None = None

    def component(self) -> HumanComponent:
        """The ``components.humans`` entry this step is (a callable prompt is in-process)."""
        fields = {
            "prompt": self.prompt if isinstance(self.prompt, str) else None,
            "assignee": self.assignee,
            "options": list(self.options) or None,
            "timeout_seconds": self.timeout_seconds,
            "on_timeout": self.on_timeout,
            "escalate_to": self.escalate_to,
            "decisions": list(self.decisions) if self.decisions else None,
        }
        return checked(
            HumanComponent,
            {k: v for k, v in fields.items() if v is not None},
            f"human step '{self.name}'",
        )


@dataclass(frozen=True)
class FunctionStep:
    name: str
    fn: Callable[..., Any]
    on_error: str = "fail"
    max_retries: int = 0
    human_review: HumanReview | None = None


@dataclass(frozen=True)
class PythonTool:
    """A Python function an agent may call (``components.tools`` with an implementation),
    or, with ``fn=None`` and ``external``, a tool the caller runs (:meth:`external_tool`)."""

    name: str
    fn: Callable[..., Any] | None
    description: str = ""
    parameters: Mapping[str, Any] = field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )
    requires_approval: bool = False
    external: bool = False
    result_schema: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class AgentStep:
    """An agent step: the agent (named like the step) and the Python tools it brings."""

    name: str
    agent: AgentSpec
    tools: tuple[PythonTool, ...] = ()
    on_error: str = "fail"
    max_retries: int = 0
    human_review: HumanReview | None = None


Step = HumanInTheLoopStep | FunctionStep | AgentStep


Participant = Step | Callable[..., Any]


def checked(model: type[_M], data: dict[str, Any], what: str) -> _M:
    """``model`` from ``data``, or a :class:`~kneo.errors.SpecError` naming the field, what is
    wrong and what was probably meant: the SDK takes the spec's words, and readers bring
    other frameworks' (``on_timeout="approve"`` -> ``"continue"``), as in YAML."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        error = validation_error_to_spec_error(exc, data, file=None, model=model)
        raise SpecError(f"{what}: {error.message}", **error.details) from None


def importable_ref(fn: Callable[..., Any], *, what: str) -> str:
    """``module:qualname`` of a module-level callable that another process can import.

    A durable run may resume in another process, which finds the function by this ref, so
    lambdas, nested functions and ``__main__`` are refused with the reason.
    """
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    if not module or not qualname or "<" in qualname or module == "__main__":
        raise InvalidRequest(
            f"{what}: {qualname or fn!r} in {module or '?'} is not importable by another "
            "process; define it at module level in an importable module",
            field="fn",
        )
    ref = ref_of(fn)
    if ref is None:
        raise InvalidRequest(
            f"{what}: {module}:{qualname} does not resolve to this function (a ref names a "
            "function defined in its module, or a method of a class defined there)",
            field="fn",
        )
    return ref
