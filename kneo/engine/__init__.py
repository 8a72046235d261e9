"""Execution: workflows, steps, the agent loop, providers, tool guard, human pauses.

Pure with respect to storage: the engine reads and writes durable state only through the
injected journal interface (:mod:`kneo.engine.journal`), and time through an injected clock.
It must not import SQLAlchemy, FastAPI, Typer or httpx (providers import their SDK lazily).

    WorkflowEngine.run(workflow, ExecutionState, Journal) -> Completed | Paused | Failed
                                                             | Cancelled | Superseded

Names below are re-exported lazily (module ``__getattr__``): importing one engine module,
as the platform does, loads only that module's imports, not the SDK builder and everything
else listed here (a fresh ``kneo human resume`` never needs the builder).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kneo.lazy import lazy_exports

if TYPE_CHECKING:
    from kneo.engine.builder import WorkflowBuilder
    from kneo.engine.cancellation import CancellationToken, RunCancelled
    from kneo.engine.conditions import register_predicate
    from kneo.engine.executor import WorkflowEngine
    from kneo.engine.functions import StepContext
    from kneo.engine.human import (
        HumanDecision,
        HumanInterventionRequest,
        HumanInterventionRequiredError,
        HumanRequest,
        validate_decision,
    )
    from kneo.engine.journal import Boundary, Journal, MemoryJournal, RunSuperseded, TraceEvent
    from kneo.engine.outcomes import Cancelled, Completed, Failed, Outcome, Paused, Superseded
    from kneo.engine.run_context import EngineOptions
    from kneo.engine.sdk_workflow import SdkWorkflow
    from kneo.engine.state import ExecutionState
    from kneo.lifecycle import RunStatus, transition

#: exported name -> the module that defines it.
_EXPORTS: dict[str, str] = {
    "WorkflowBuilder": "kneo.engine.builder",
    "SdkWorkflow": "kneo.engine.sdk_workflow",
    **dict.fromkeys(["CancellationToken", "RunCancelled"], "kneo.engine.cancellation"),
    "register_predicate": "kneo.engine.conditions",
    "EngineOptions": "kneo.engine.run_context",
    "WorkflowEngine": "kneo.engine.executor",
    "StepContext": "kneo.engine.functions",
    **dict.fromkeys(
        [
            "HumanDecision",
            "HumanInterventionRequest",
            "HumanInterventionRequiredError",
            "HumanRequest",
            "validate_decision",
        ],
        "kneo.engine.human",
    ),
    **dict.fromkeys(
        ["Boundary", "Journal", "MemoryJournal", "RunSuperseded", "TraceEvent"],
        "kneo.engine.journal",
    ),
    **dict.fromkeys(["RunStatus", "transition"], "kneo.lifecycle"),
    **dict.fromkeys(
        ["Cancelled", "Completed", "Failed", "Outcome", "Paused", "Superseded"],
        "kneo.engine.outcomes",
    ),
    "ExecutionState": "kneo.engine.state",
}


__getattr__, __dir__ = lazy_exports("kneo.engine", globals(), _EXPORTS)


__all__ = [
    "Boundary",
    "CancellationToken",
    "Cancelled",
    "Completed",
    "EngineOptions",
    "ExecutionState",
    "Failed",
    "HumanDecision",
    "HumanInterventionRequest",
    "HumanInterventionRequiredError",
    "HumanRequest",
    "Journal",
    "MemoryJournal",
    "Outcome",
    "Paused",
    "RunCancelled",
    "RunStatus",
    "RunSuperseded",
    "SdkWorkflow",
    "StepContext",
    "Superseded",
    "TraceEvent",
    "WorkflowBuilder",
    "WorkflowEngine",
    "register_predicate",
    "transition",
    "validate_decision",
]
