"""How a unit ends a run's program early: the control-flow exceptions of the engine.

:class:`RunPaused` carries the requests of a pause, :class:`RunFailed` a failed unit's error,
:class:`ProbeStop` the units a dry probe would run next. Step kinds and workflow families
raise them; they never leave the engine: ``WorkflowEngine.run`` turns them into outcomes
(:mod:`kneo.engine.outcomes`), as it does the journal's :class:`RunSuperseded` and the
cancellation's :class:`RunCancelled`.
"""

from __future__ import annotations

from typing import Any

from kneo.engine.human import HumanRequest


class RunPaused(Exception):
    """The run waits for people: ``requests`` are what it asks (one human task)."""

    def __init__(self, requests: list[HumanRequest]) -> None:
        super().__init__("paused")
        self.requests = requests


class RunFailed(Exception):
    """A unit failed for good (its ``on_error`` policy gave up): ``error`` ends the run."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error.get("message", "failed"))
        self.error = error


class ProbeStop(Exception):
    """A dry probe (``WorkflowEngine.next_units``) reached the units that would run next."""

    def __init__(self, units: list[dict[str, Any]]) -> None:
        super().__init__("probe")
        self.units = units


__all__ = ["ProbeStop", "RunFailed", "RunPaused"]
