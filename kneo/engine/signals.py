"""Control-flow signals between the executor and the workflow families (internal).

``_Pause`` carries the requests of a pause, ``_Failure`` a failed unit's error, ``_ProbeStop``
the units a dry probe would run next. They never leave the engine: ``WorkflowEngine.run``
turns them into outcomes.
"""

from __future__ import annotations

from typing import Any

from kneo.engine.human import HumanRequest


class _Pause(Exception):
    def __init__(self, requests: list[HumanRequest]) -> None:
        super().__init__("paused")
        self.requests = requests


class _Failure(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error.get("message", "failed"))
        self.error = error


class _ProbeStop(Exception):
    def __init__(self, units: list[dict[str, Any]]) -> None:
        super().__init__("probe")
        self.units = units
