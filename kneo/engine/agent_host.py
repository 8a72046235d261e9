"""The engine side of :class:`~kneo.engine.agent_seam.AgentHost` for one agent unit.

The agent loop is written against that protocol so it never sees the run's state, journal or
locks directly; this adapter maps each call onto the unit's run (events and boundaries under
the unit key, decisions, pauses, the run's MCP sessions and spending).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from kneo.engine.budgets import usage_of
from kneo.engine.human import QUESTION_TOOL, HumanRequest
from kneo.engine.remote_tools import LazySessions
from kneo.engine.signals import RunPaused
from kneo.spec.compiled import CompiledStep

if TYPE_CHECKING:
    from kneo.engine.workflow_run import WorkflowRun


class UnitAgentHost:
    """One agent unit's view of its run (:class:`~kneo.engine.agent_seam.AgentHost`)."""

    def __init__(self, run: WorkflowRun, unit_key: str, step: CompiledStep) -> None:
        self._run = run
        self.unit_key = unit_key
        self.step_id = step.id
        self._step = step
        self.lock = run.state.lock
        self.access = run.access
        self.code = run.code

    def emit(self, event_type: str, data: dict[str, Any]) -> None:
        self._run.emit(event_type, data, step_id=self.step_id, unit_key=self.unit_key)

    def commit(self, kind: str) -> None:
        self._run.commit(kind, step_id=self.step_id, unit_key=self.unit_key, status="running")

    def checkpoint_cancel(self) -> None:
        self._run.check_cancel()

    def agent_record(self) -> dict[str, Any]:
        with self.lock:
            return self._run.state.agents.setdefault(self.unit_key, {})

    def decision(self, wait_key: str) -> dict[str, Any] | None:
        return self._run.decision(wait_key)

    def previous_transcript(self, agent_name: str) -> list[dict[str, Any]] | None:
        """The newest completed transcript of the same agent in this run (buffer memory)."""
        state = self._run.state
        with self.lock:
            for key in reversed(state.order):
                record = state.agents.get(key)
                if record and record.get("agent") == agent_name and record.get("messages"):
                    return [dict(m) for m in record["messages"]]
        return None

    def pause(self, requests: Sequence[HumanRequest]) -> NoReturn:
        raise RunPaused(list(requests))

    def mcp(self) -> LazySessions | None:
        return self._run.mcp

    def delegate(self, unit_key: str, step: CompiledStep, text: str) -> str:
        return self._run.agent_unit(unit_key, step, text)

    def new_request(self, **fields: Any) -> HumanRequest:
        return self._run.new_request(step=self._step, **fields)

    def run_usage(self) -> dict[str, int]:
        return self._run.spent()

    def run_usage_of(self, agent: str) -> dict[str, int]:
        with self.lock:
            records = [r for r in self._run.state.agents.values() if r.get("agent") == agent]
            return usage_of(records)

    def question_index(self, call_id: str) -> int:
        """1-based index of an ``ask_question`` call in the run: calls in completed units (in
        completion order) plus those of this unit up to ``call_id``. Deterministic, so the
        wait name is the same on resume and on replay."""
        state = self._run.state

        def calls(record: dict[str, Any] | None) -> list[str]:
            return [
                c.get("id", "")
                for m in (record or {}).get("messages") or []
                for c in m.get("tool_calls") or []
                if c.get("name") == QUESTION_TOOL
            ]

        with self.lock:
            earlier = sum(
                len(calls(state.agents.get(k))) for k in state.order if k != self.unit_key
            )
            mine = calls(state.agents.get(self.unit_key))
        return earlier + (mine.index(call_id) + 1 if call_id in mine else len(mine) + 1)
