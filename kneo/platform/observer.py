"""What a driven run looks like from outside: step counters and OpenTelemetry spans, both
from the engine's own trace events.

The engine already reports every step start and end, model turn and tool call to its journal
as it happens (:class:`~kneo.engine.journal.TraceEvent`). :class:`RunObserver` sits in front
of the run's journal, passes everything on unchanged and, on the way, counts steps
(``kneo_steps_total``) and — with tracing on — opens and closes the spans of the GenAI
semantic conventions: the run is ``invoke_workflow`` (``invoke_agent`` for an agent run) →
step → ``invoke_agent`` around an agent step's ``chat`` (model call) and ``execute_tool``
spans, and a human pause. A resumed run continues the trace of its pause (a child of the
``human pause`` span, in whichever process resumes it) and links to it. The engine itself
knows nothing about either. With metrics and tracing both off, the manager passes the journal
as it is: the observer costs nothing then.

A model turn has no start event; its span starts at the unit's previous event or boundary
(the engine does nothing else in between) and ends at ``model_turn_completed``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from kneo import metrics, tracing
from kneo.engine.journal import Boundary, Journal, TraceEvent
from kneo.jsontext import dumps
from kneo.projects import DEFAULT_PROJECT

if TYPE_CHECKING:
    from kneo.store import RunRecord

_STEP_END = {"step_completed": "completed", "step_skipped": "skipped", "step_failed": "failed"}
#: Kneo's provider names as the GenAI semantic conventions' ``gen_ai.provider.name`` values
GEN_AI_PROVIDERS = {
    "openai": "openai",
    "azure-openai": "azure.ai.openai",
    "anthropic": "anthropic",
    "google": "gcp.gemini",
}


class _Unit:
    __slots__ = ("agent", "kind", "mark", "span", "step_id", "tool", "usage")

    def __init__(self, kind: str, step_id: str | None, now: int) -> None:
        self.kind = kind
        self.step_id = step_id
        self.span: Any = None
        self.agent: Any = None  # an agent step's invoke_agent span (parent of its calls)
        self.tool: Any = None
        self.mark = now
        self.usage = [0, 0]  # the agent's input and output tokens so far


def is_agent_run(run: RunRecord) -> bool:
    """Whether the run invokes one agent (``target: agent``, or a spec without a workflow)
    rather than a workflow."""
    spec = getattr(run, "spec", None)
    return bool(run.target == "agent" or (isinstance(spec, Mapping) and not spec.get("workflow")))


def run_span_attributes(run: RunRecord) -> tuple[str, dict[str, Any]]:
    """The run span's name and attributes: ``invoke_workflow <name>`` for a workflow run,
    ``invoke_agent <name>`` for an agent run (GenAI semantic conventions), with Kneo's own."""
    agent_run = is_agent_run(run)
    name = (run.agent_name if agent_run else run.workflow_name) or "workflow"
    operation = "invoke_agent" if agent_run else "invoke_workflow"
    attrs = {
        "gen_ai.operation.name": operation,
        "gen_ai.conversation.id": run.run_id,
        "gen_ai.agent.name" if agent_run else "gen_ai.workflow.name": name,
        "kneo.run.id": run.run_id,
        "kneo.workflow.name": run.workflow_name,
        "kneo.workflow.kind": run.workflow_kind,
        "kneo.environment": run.environment,
        "kneo.bundle.name": run.bundle_name,
    }
    return f"{operation} {name}", attrs


class RunObserver:
    """A journal in front of the run's journal; see the module docstring."""

    def __init__(
        self,
        journal: Journal,
        *,
        run: RunRecord,
        links: Sequence[Any] = (),
        record: bool = True,
        parent: Any = None,
        project: str = DEFAULT_PROJECT,
    ) -> None:
        self._journal = journal
        #: the run's project: the ``project`` label of its step and token metrics
        self._project = project
        self._lock = threading.Lock()
        self._units: dict[str | None, _Unit] = {}
        self._record = record and metrics.enabled()
        self.span: Any = None
        self._run_id = run.run_id
        self._agent_run = is_agent_run(run)
        if tracing.tracer() is not None:
            name, attrs = run_span_attributes(run)
            self.span = tracing.start_span(name, parent=parent, attrs=attrs, links=list(links))

    # ------------------------------------------------------------------ Journal

    def emit(self, event: TraceEvent) -> None:
        self._journal.emit(event)
        self._see(event)

    def commit(self, boundary: Boundary) -> None:
        self._journal.commit(boundary)
        if self.span is not None:
            with self._lock:
                unit = self._units.get(boundary.unit_key)
                if unit is not None:
                    unit.mark = time.time_ns()

    # ------------------------------------------------------------------ events

    def _see(self, event: TraceEvent) -> None:
        kind = event.event_type
        if kind == "step_started":
            if self.span is not None:  # units carry spans; a step's end event names its kind
                self._step_started(event)
            return
        if kind in _STEP_END:
            self._step_ended(event, kind)
            return
        if kind == "model_turn_completed" and self._record:
            self._count_model_turn(event.data)
        if self.span is not None:
            self._unit_event(event, kind)

    def _step_started(self, event: TraceEvent) -> None:
        """A unit for the step, and its span (an agent step's ``invoke_agent`` under it)."""
        with self._lock:
            unit = self._units[event.unit_key] = _Unit(
                str(event.data.get("kind") or "step"), event.step_id, time.time_ns()
            )
            if self.span is not None:
                unit.span = tracing.start_span(
                    f"step {event.step_id}",
                    parent=self.span,
                    attrs={
                        "kneo.step.id": event.step_id,
                        "kneo.step.kind": unit.kind,
                        "kneo.unit_key": event.unit_key,
                        "kneo.step.attempt": event.data.get("attempt"),
                    },
                    start_time=unit.mark,
                )
                if unit.kind == "agent" and not self._agent_run:
                    unit.agent = self._agent_span(unit, event.data.get("agent"))

    def _step_ended(self, event: TraceEvent, kind: str) -> None:
        """The step's count by kind and status, and its unit's spans ended."""
        ended = None
        if self.span is not None:
            with self._lock:
                ended = self._units.pop(event.unit_key, None)
        status = "continued" if event.data.get("continued") else _STEP_END[kind]
        if self._record:  # every step end event names the step's kind
            metrics.record_step(
                str(event.data.get("kind") or "step"), status, project=self._project
            )
        if ended is not None and ended.span is not None:
            _end_agent(ended, failed=kind == "step_failed")
            ended.span.set_attribute("kneo.step.status", status)
            if kind == "step_failed":
                error = event.data.get("error") or {}
                tracing.fail(ended.span, str(error.get("code") or "step_failed"))
            ended.span.end()

    def _count_model_turn(self, data: Mapping[str, Any]) -> None:
        """A model turn's tokens, and its cost when it has one."""
        metrics.record_model_tokens(
            str(data.get("provider") or ""),
            str(data.get("model") or ""),
            data.get("usage") or {},
            project=self._project,
        )
        if isinstance(cost := data.get("cost"), float | int):
            metrics.record_model_cost(
                str(data.get("provider") or ""),
                str(data.get("model") or ""),
                float(cost),
                str(data.get("currency") or ""),
                project=self._project,
            )

    def _unit_event(self, event: TraceEvent, kind: str) -> None:
        """A model turn's or a tool call's span under its unit's (when the unit has one)."""
        with self._lock:
            current = self._units.get(event.unit_key)
            if current is None or current.span is None:
                return
            unit, now = current, time.time_ns()
            if kind == "model_turn_completed":
                self._model_span(unit, event.data, now)
            elif kind == "tool_call_started":
                unit.tool = self._tool_span(unit, event.data, now)
            elif kind.startswith("tool_"):
                tool, unit.tool = unit.tool, None
                if tool is None:  # refused, external, rejected: never started
                    tool = self._tool_span(unit, event.data, now)
                self._end_tool(tool, kind, event.data)
            unit.mark = now

    def _agent_span(self, unit: _Unit, name: object) -> Any:
        """An agent step's ``invoke_agent`` span (GenAI conventions), under its step span,
        around the agent's model calls and tool calls."""
        agent = str(name or unit.step_id or "agent")
        return tracing.start_span(
            f"invoke_agent {agent}",
            parent=unit.span,
            attrs={
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": agent,
                "gen_ai.conversation.id": self._run_id,
            },
            start_time=unit.mark,
        )

    def _model_span(self, unit: _Unit, data: Mapping[str, Any], now: int) -> None:
        usage = data.get("usage") or {}
        model = data.get("model")
        provider = str(data.get("provider") or "")
        stop = data.get("stop_reason")
        if unit.agent is not None:
            _agent_saw_model(unit, provider, model, usage)
        span = tracing.start_span(
            f"chat {model}" if model else "chat",
            parent=unit.agent or unit.span,
            # a request to a remote provider is a CLIENT span; the dummy answers in-process
            kind=tracing.client_kind() if provider and provider != "dummy" else None,
            attrs={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": GEN_AI_PROVIDERS.get(provider, provider or None),
                "gen_ai.request.model": model,
                "gen_ai.agent.name": data.get("agent"),
                "gen_ai.usage.input_tokens": usage.get("input_tokens"),
                "gen_ai.usage.output_tokens": usage.get("output_tokens"),
                "gen_ai.response.finish_reasons": [str(stop)] if stop else None,
                "kneo.agent.turn": data.get("turn"),
                "kneo.agent.phase": data.get("phase"),
            },
            start_time=unit.mark,
        )
        if stop == "max_tokens":
            tracing.fail(span, "model_output_truncated")
        span.end(end_time=now)

    def _tool_span(self, unit: _Unit, data: Mapping[str, Any], now: int) -> Any:
        name = data.get("tool_name")
        server = data.get("mcp_server")
        return tracing.start_span(
            f"execute_tool {name}",
            parent=unit.agent or unit.span,
            # an MCP tool runs on its server: a call out (MCP's tools/call), a CLIENT span
            kind=tracing.client_kind() if server else None,
            attrs={
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": name,
                "gen_ai.tool.call.id": data.get("tool_call_id"),
                "gen_ai.tool.type": "extension" if server else "function",
                "mcp.method.name": "tools/call" if server else None,
                "kneo.mcp.server": server,
                "kneo.tool.arguments_bytes": data.get("arguments_bytes"),
                # already redacted by the engine, and "[REDACTED]" unless recording is on
                "kneo.tool.arguments": _text(data.get("arguments")),
            },
            start_time=now,
        )

    def _end_tool(self, tool: Any, kind: str, data: Mapping[str, Any]) -> None:
        status = str(data.get("status") or kind.removeprefix("tool_"))
        tool.set_attributes(
            tracing.attributes(
                {
                    "kneo.tool.status": status,
                    "kneo.tool.result_bytes": data.get("result_bytes"),
                    "kneo.tool.result": _text(data.get("result")),
                    "kneo.tool.external": data.get("external"),
                }
            )
        )
        if status not in ("ok", "completed"):
            tracing.fail(tool, status, data.get("reason"))
        tool.end()

    # ------------------------------------------------------------------ the end

    def paused(self, requests: Sequence[Any]) -> dict[str, str] | None:
        """A ``human pause`` span under the run; its trace context, which the pause stores
        so the resume (in any process) links back to it."""
        if self.span is None:
            return None
        step_id = requests[0].step_id if requests else None
        with self._lock:
            asking = [u.span for u in self._units.values() if u.step_id == step_id and u.span]
        pause = tracing.start_span(
            "human pause",
            parent=asking[0] if asking else self.span,
            attrs={
                "kneo.human.request_ids": [str(r.request_id) for r in requests],
                "kneo.human.kinds": [str(r.kind) for r in requests],
                "kneo.human.step_id": step_id,
            },
        )
        pause.end()
        return tracing.carrier(pause)

    def end(self, status: str | None, error: Mapping[str, Any] | None = None) -> None:
        """Close what is still open (a failure or cancel mid-step) and the run span."""
        if self.span is None:
            return
        with self._lock:
            units, self._units = list(self._units.values()), {}
        for unit in units:
            if unit.tool is not None:
                unit.tool.end()
            _end_agent(unit, failed=status == "failed")
            if unit.span is not None:
                unit.span.end()
        if status is not None:
            self.span.set_attribute("kneo.run.status", str(status))
        if status == "failed":
            tracing.fail(self.span, str((error or {}).get("code") or "run_failed"))
        self.span.end()


def _agent_saw_model(unit: _Unit, provider: str, model: object, usage: Mapping[str, Any]) -> None:
    """The agent span learns its provider and model from its first model call, and adds up
    the tokens of all of them."""
    if not unit.usage[0] and not unit.usage[1]:
        unit.agent.set_attributes(
            tracing.attributes(
                {
                    "gen_ai.provider.name": GEN_AI_PROVIDERS.get(provider, provider or None),
                    "gen_ai.request.model": model,
                }
            )
        )
    unit.usage[0] += int(usage.get("input_tokens") or 0)
    unit.usage[1] += int(usage.get("output_tokens") or 0)


def _end_agent(unit: _Unit, *, failed: bool) -> None:
    """End an agent step's span (with its token totals), once."""
    agent, unit.agent = unit.agent, None
    if agent is None:
        return
    agent.set_attributes(
        {"gen_ai.usage.input_tokens": unit.usage[0], "gen_ai.usage.output_tokens": unit.usage[1]}
    )
    if failed:
        tracing.fail(agent, "step_failed")
    agent.end()


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value

    return dumps(value)


__all__ = ["RunObserver"]
