"""What happens when a unit does not simply complete: its step's ``on_error`` policy after a
failed attempt (retry with backoff, ask a person, continue past it, fail the run), the skip of
a rejected confirmation, and the records and events each of these leaves.

The unit lifecycle (:meth:`kneo.engine.workflow_run.WorkflowRun.unit`) calls in here only off
the happy path, so the policies live apart from the attempts they judge. Every function
takes the unit's :class:`~kneo.engine.workflow_run.WorkflowRun`; the records it writes are the
unit's entry in the execution state (``retrying``, ``failed``, ``skipped``, ``continued``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn

from kneo.engine.budgets import BudgetExceeded
from kneo.engine.outcomes import HumanRejected, error_info
from kneo.engine.signals import RunFailed, RunPaused
from kneo.engine.state import ExecutionState
from kneo.spec.compiled import CompiledStep

if TYPE_CHECKING:  # (the run imports this module: it names the run only to type it)
    from kneo.engine.workflow_run import WorkflowRun

__all__ = [
    "continue_past",
    "error_choice",
    "fail",
    "finish_unit",
    "on_error",
    "record_error",
    "skip",
]


def finish_unit(state: ExecutionState, key: str, record: dict[str, Any]) -> None:
    """A unit ended (completed, skipped or continued): record it, clear the position."""
    with state.lock:
        state.units[key] = record
        state.order.append(key)
        state.position = {}


def record_error(
    run: WorkflowRun, key: str, step: CompiledStep, status: str, attempt: int, error: dict[str, Any]
) -> None:
    """The unit's record after a failed attempt (``retrying`` or ``failed``)."""
    with run.state.lock:
        run.state.units[key] = {
            "step_id": step.id,
            "status": status,
            "attempts": attempt,
            "error": error,
        }


def skip(run: WorkflowRun, key: str, step: CompiledStep, text: str) -> str:
    """A confirmation was rejected with ``on_reject: skip``: record it, pass the input on."""
    finish_unit(
        run.state,
        key,
        {
            "step_id": step.id,
            "status": "skipped",
            "output": text,
            "attempts": 0,
            "finished_at": run.now_iso(),
        },
    )
    run.step_event(
        "step_skipped",
        key,
        step,
        {"kind": step.kind, "reason": "confirmation rejected"},
        status="skipped",
    )
    return text


def on_error(
    run: WorkflowRun, key: str, step: CompiledStep, text: str, attempt: int, exc: BaseException
) -> str | None:
    """Retry (returns None), continue (returns the pass-through output) or fail (raises)."""
    error = error_info(exc, step_id=step.id, unit_key=key, attempt=attempt)
    if isinstance(exc, BudgetExceeded):
        fail(run, key, step, attempt, error)  # spending more is what the budget refuses
    fault = not isinstance(exc, HumanRejected)  # a rejection is a decision, not a fault
    if step.on_error == "retry" and fault and attempt <= step.max_retries:
        delay = step.retry_backoff_seconds * (2 ** (attempt - 1))
        record_error(run, key, step, "retrying", attempt, error)
        run.step_event(
            "step_retry",
            key,
            step,
            {"attempt": attempt, "delay_seconds": delay, "error": error},
            status="retrying",
            attempt=attempt,
        )
        if delay > 0:
            run.engine.sleep(delay)
        run.check_cancel()
        return None
    if step.on_error == "pause" and fault:
        choice = error_choice(run, key, step, attempt, error)
        if choice == "retry":
            return None
        if choice == "skip":
            return continue_past(run, key, step, text, attempt, error)
    if step.on_error == "continue":
        return continue_past(run, key, step, text, attempt, error)
    fail(run, key, step, attempt, error)


def fail(
    run: WorkflowRun, key: str, step: CompiledStep, attempt: int, error: dict[str, Any]
) -> NoReturn:
    """The unit failed for good: record it as the run's failure and end the run."""
    with run.state.lock:
        record_error(run, key, step, "failed", attempt, error)
        run.state.failure = error
    run.step_event(
        "step_failed",
        key,
        step,
        {"kind": step.kind, "attempt": attempt, "error": error},
        status="failed",
        attempt=attempt,
    )
    raise RunFailed(error)


def continue_past(
    run: WorkflowRun, key: str, step: CompiledStep, text: str, attempt: int, error: dict[str, Any]
) -> str:
    """``on_error: continue``: record the failure, pass the input on unchanged."""
    finish_unit(
        run.state,
        key,
        {
            "step_id": step.id,
            "status": "continued",
            "output": text,
            "attempts": attempt,
            "error": error,
            "finished_at": run.now_iso(),
        },
    )
    run.step_event(
        "step_failed",
        key,
        step,
        {"kind": step.kind, "attempt": attempt, "error": error, "continued": True},
        status="continued",
        attempt=attempt,
    )
    return text


def error_choice(
    run: WorkflowRun, key: str, step: CompiledStep, attempt: int, error: dict[str, Any]
) -> str:
    """``on_error: pause``: a person picks retry, skip or fail for this failed attempt."""
    wait_key = f"{key}:error:{attempt}"
    decision = run.decision(wait_key)
    if decision is None:
        record_error(run, key, step, "failed", attempt, error)
        run.commit("step_failed", step_id=step.id, unit_key=key, status="failed", attempt=attempt)
        raise RunPaused(
            [
                run.new_request(
                    kind="error",
                    wait_key=wait_key,
                    step=step,
                    prompt=f"Step '{step.id}' failed: {error['message']}. Retry, skip or fail?",
                    options=("retry", "skip", "fail"),
                    decisions=("selected",),
                    context={"error": error},
                )
            ]
        )
    return str(decision.get("selected_option") or "fail")
