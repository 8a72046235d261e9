"""Function steps: resolve ``module:function`` refs and call them with a step context.

A function step's callable takes the step input text and a :class:`StepContext` and returns
text (``fn(text)`` with one parameter also works). A ref reaches its function only through
the trust kernel (:func:`kneo.kernel.resolve_callable`): the run's grant must allow the module
at every call, and the name must be a function defined there; the import happens once.
"""

from __future__ import annotations

import inspect
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kneo.engine.cancellation import CancellationToken
from kneo.engine.outcomes import StepFailure
from kneo.errors import ErrorCode, KneoError
from kneo.kernel import CallableGrant, resolve_callable
from kneo.kernel.code import LoadedCode
from kneo.spec.compiled import CompiledStep

if TYPE_CHECKING:
    from kneo.engine.workflow_run import WorkflowRun

StepFunction = Callable[..., Any]


@dataclass(frozen=True)
class StepContext:
    """What a function step may know about its run. Read-only."""

    run_id: str
    step_id: str
    unit_key: str
    attempt: int
    input_text: str
    outputs: Mapping[str, str] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    cancellation: CancellationToken | None = None
    #: ``human_review.input_schema``: the values a person provided before the step ran.
    human_input: Mapping[str, Any] | None = None
    #: ``human_review.review_output``: the reviewer's feedback when the step runs again.
    review_feedback: str | None = None

    @property
    def cancelled(self) -> bool:
        return self.cancellation is not None and self.cancellation.cancelled


class FunctionImportError(KneoError):
    code = ErrorCode.E_UNKNOWN_FUNCTION_REF


_cache: dict[tuple[str, str], tuple[StepFunction, int]] = {}
_lock = threading.Lock()


def resolve_function(
    ref: str, *, grant: CallableGrant | None = None, code: LoadedCode | None = None
) -> tuple[StepFunction, int]:
    """The callable behind ``module:function`` and how many positional args it takes (1|2).
    ``grant`` (the run's) is asked at every call, so a run resumed under narrower rules
    reaches nothing its grant no longer allows; ``code``: the run's pinned project code.
    The import itself is cached per code set."""
    if grant is not None:
        grant.function(ref, path="ref", code=code.code if code is not None else None)
    key = (code.namespace if code is not None else "", ref)
    with _lock:
        hit = _cache.get(key)
    if hit is not None:
        return hit
    try:
        target = resolve_callable(ref, code=code, grant=grant)
    except KneoError as exc:
        if exc.code != ErrorCode.E_UNKNOWN_FUNCTION_REF:
            raise
        raise FunctionImportError(exc.message, ref=ref) from exc.__cause__
    arity = arity_of(target)
    with _lock:
        _cache[key] = (target, arity)
    return target, arity


def arity_of(fn: StepFunction) -> int:
    """2 when ``fn`` can take ``(text, context)``, else 1."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return 2
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if any(p.kind is p.VAR_POSITIONAL for p in params) or len(positional) >= 2:
        return 2
    return 1


def call_function(fn: StepFunction, arity: int, text: str, context: StepContext | None) -> str:
    """``fn(text, context)`` when it takes two arguments (``context`` is then required), else
    ``fn(text)``."""
    if arity == 2:
        if context is None:
            raise TypeError("a two-argument step function needs its StepContext")
        result = fn(text, context)
    else:
        result = fn(text)
    return as_text(result)


def execute_function_step(
    run: WorkflowRun,
    key: str,
    step: CompiledStep,
    text: str,
    attempt: int,
    human_input: dict[str, Any] | None = None,
    feedback: str | None = None,
) -> str:
    """Run the step's callable (an SDK override by ref or step id first) with its context,
    under ``timeout_seconds`` when it has one (the call then runs in a daemon thread)."""
    ref = step.function_ref or step.ref
    override = run.engine.functions.get(ref) or run.engine.functions.get(step.id)
    if override is not None:
        fn, arity = override, arity_of(override)
    else:
        fn, arity = resolve_function(ref, grant=run.access, code=run.code)
    # A one-parameter ``fn(text)`` never sees the context: do not build it.
    context = (
        StepContext(
            run_id=run.run_id,
            step_id=step.id,
            unit_key=key,
            attempt=attempt,
            input_text=run.state.input_text,
            outputs=run.state.outputs_by_step(),
            metadata=run.metadata,
            cancellation=run.cancellation,
            human_input=human_input,
            review_feedback=feedback,
        )
        if arity == 2
        else None
    )
    if step.timeout_seconds is None:
        return call_function(fn, arity, text, context)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["output"] = call_function(fn, arity, text, context)
        except BaseException as exc:  # re-raised in the calling thread
            box["error"] = exc

    worker = threading.Thread(target=target, name=f"kneo-step-{step.id}", daemon=True)
    worker.start()
    worker.join(step.timeout_seconds)
    if worker.is_alive():
        raise StepFailure(
            f"step '{step.id}' exceeded its timeout of {step.timeout_seconds:g}s",
            code=ErrorCode.step_timeout,
        )
    if "error" in box:
        raise box["error"]
    return str(box["output"])


def as_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)
