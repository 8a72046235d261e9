"""How the engine runs a workflow: :class:`EngineOptions` (what it records, how many steps
at once).

A run's own code is :class:`kneo.engine.workflow_run.WorkflowRun`, made per call by
:class:`kneo.engine.executor.WorkflowEngine`. The workflow families
(:mod:`kneo.engine.families`), the step kinds (:mod:`kneo.engine.functions`,
:mod:`kneo.engine.human_step`, :mod:`kneo.engine.child_step`, :mod:`kneo.engine.agent_host`,
:mod:`kneo.engine.bridges`, :mod:`kneo.engine.remote_agents`) and the ``on_error`` policies
(:mod:`kneo.engine.unit_failures`) are handed that run, and the run its engine: each is
named by its class (one implementation: each signature is written once), under
``TYPE_CHECKING`` only where the named module imports the naming one at run time (the run
dispatches to the step kinds), so the engine's modules form no import cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["EngineOptions"]


@dataclass
class EngineOptions:
    """How the engine runs a workflow (what it records, how many steps at once)."""

    record_tool_arguments: bool = False
    record_tool_results: bool = False
    max_parallel: int = 8
    extra: dict[str, Any] = field(default_factory=dict)
