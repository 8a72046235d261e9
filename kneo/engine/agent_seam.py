"""What the agent loop needs from the engine for one agent unit: :class:`AgentHost`.

The agent loop (:mod:`kneo.engine.agent`, :mod:`kneo.engine.tool_calls`,
:mod:`kneo.engine.budget_checks`) is written against this protocol so it never sees the
run's state, journal or locks directly; :class:`kneo.engine.agent_host.UnitAgentHost` maps
each call onto the unit's run. A leaf module: the loop and the run both depend on it, it on
neither.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NoReturn, Protocol

from kneo.engine.human import HumanRequest
from kneo.engine.remote_tools import LazySessions
from kneo.kernel.code import LoadedCode
from kneo.policy.access import HostAccess
from kneo.spec.compiled import CompiledStep

__all__ = ["AgentHost"]


class AgentHost(Protocol):
    """What the agent loop needs from the engine for one unit (implemented by
    :class:`kneo.engine.agent_host.UnitAgentHost`)."""

    unit_key: str
    step_id: str
    lock: Any  # guards the agent record against concurrent snapshots
    #: what the run may reach on the host; ``None`` outside a platform
    access: HostAccess | None
    #: the run's pinned project code, where the spec's ``module:function`` refs load from
    code: LoadedCode | None

    def emit(self, event_type: str, data: dict[str, Any]) -> None: ...

    def commit(self, kind: str) -> None: ...

    def checkpoint_cancel(self) -> None: ...

    def agent_record(self) -> dict[str, Any]: ...

    def previous_transcript(self, agent_name: str) -> list[dict[str, Any]] | None: ...

    def decision(self, wait_key: str) -> dict[str, Any] | None: ...

    def pause(self, requests: Sequence[HumanRequest]) -> NoReturn:
        """Pause the unit for ``requests``, one human task (raises)."""
        ...

    def new_request(self, **fields: Any) -> HumanRequest: ...

    def question_index(self, call_id: str) -> int: ...

    def run_usage(self) -> dict[str, int]:
        """What the whole run has spent so far (:func:`kneo.engine.budgets.usage_of`)."""
        ...

    def run_usage_of(self, agent: str) -> dict[str, int]:
        """What the units of the agent named ``agent`` have spent in the run so far."""
        ...

    def mcp(self) -> LazySessions | None:
        """The run's MCP sessions (``None`` when the spec imports no MCP server)."""
        ...

    def delegate(self, unit_key: str, step: CompiledStep, text: str) -> str:
        """Run ``step``'s agent (or the workflow backing it) as unit ``unit_key`` of this run,
        continuing from what that unit recorded; its answer."""
        ...
