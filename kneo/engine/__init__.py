"""Execution: workflows, steps, the agent loop, providers, tool guard, human pauses.

Pure with respect to storage: the engine reads and writes durable state only through the
injected journal interface (:mod:`kneo.engine.journal`), and time through an injected clock.
It must not import SQLAlchemy, FastAPI, Typer or httpx (providers import their SDK lazily).

    WorkflowEngine.run(workflow, ExecutionState, Journal) -> Completed | Paused | Failed
                                                             | Cancelled | Superseded
"""

from kneo.engine.builder import SdkWorkflow, WorkflowBuilder
from kneo.engine.cancellation import CancellationToken, RunCancelled
from kneo.engine.conditions import register_predicate
from kneo.engine.executor import (
    Cancelled,
    Completed,
    EngineOptions,
    Failed,
    Outcome,
    Paused,
    Superseded,
    WorkflowEngine,
)
from kneo.engine.functions import StepContext
from kneo.engine.human import (
    HumanDecision,
    HumanInterventionRequest,
    HumanInterventionRequiredError,
    HumanRequest,
    validate_decision,
)
from kneo.engine.journal import Boundary, Journal, MemoryJournal, RunSuperseded, TraceEvent
from kneo.engine.lifecycle import RunStatus, transition
from kneo.engine.state import ExecutionState

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
