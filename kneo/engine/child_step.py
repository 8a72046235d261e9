"""The ``kind: workflow`` step: another bundle of the run's project runs as a child run, and
the step waits for it.

The wait is a pause like a person's: a request of kind ``child_run`` (its context names the
bundle and carries the step's input), persisted as the run's continuation, so a restart or
another process resumes it. The platform starts the child (:mod:`kneo.platform.children`)
and, when the child ends, records its outcome as the request's decision: ``provided`` with
the child's output (the step's output), ``rejected`` with the child's error (the step
fails). People never decide it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kneo.engine.functions import as_text
from kneo.engine.outcomes import StepFailure
from kneo.engine.signals import RunPaused
from kneo.errors import ErrorCode
from kneo.spec.compiled import CompiledStep

if TYPE_CHECKING:
    from kneo.engine.workflow_run import WorkflowRun

#: the request kind of a wait on a child run
CHILD_RUN = "child_run"
#: the decisions the platform records on it
CHILD_DECISIONS = ("provided", "rejected")


def execute_workflow_step(
    run: WorkflowRun, key: str, step: CompiledStep, text: str
) -> tuple[str, dict[str, Any]]:
    """The child run's output once the platform recorded its outcome; before, a pause that
    asks the platform to start it (bundle ``step.ref``, input ``text``)."""
    decision = run.decision(key)
    if decision is None:
        raise RunPaused(
            [
                run.new_request(
                    kind=CHILD_RUN,
                    wait_key=key,
                    step=step,
                    prompt=f"Waiting for the child run of bundle '{step.ref}'",
                    decisions=CHILD_DECISIONS,
                    context={"step_id": step.id, "bundle": step.ref, "input": text},
                )
            ]
        )
    meta = dict(decision.get("metadata") or {})
    extra = {"child_run_id": meta.get("child_run_id"), "bundle": step.ref}
    if decision.get("decision") == "provided":  # the whole output rides in the metadata
        output = meta.get("output")
        return as_text(decision.get("content") if output is None else output), extra
    reason = decision.get("content") or "the child run failed"
    raise StepFailure(
        f"step '{step.id}': child run of bundle '{step.ref}' did not succeed: {reason}",
        code=ErrorCode.step_failed,
        step_id=step.id,
        child_run_id=meta.get("child_run_id"),
    )


__all__ = ["CHILD_DECISIONS", "CHILD_RUN", "execute_workflow_step"]
