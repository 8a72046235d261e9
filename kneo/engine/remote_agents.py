"""Agents served elsewhere (``agent.remote``, A2A): the engine's side of the seam.

The engine never imports the A2A SDK. The platform injects a :class:`RemoteAgents`
(``kneo.remote.a2a.A2AAgents``) that talks to the remote agent through the trust kernel;
here a unit of the run drives the remote *task* durably:

* the task's id and context id are checkpointed as soon as the remote names them, so a
  process killed mid-call picks up the same task (it watches it again, never re-sends);
* the remote's progress (status changes, artifacts) becomes ``remote_agent_progress`` trace
  events of the unit;
* a remote ``input-required`` pauses the run with a ``question`` request carrying the
  remote's question; the person's answer goes back to the same task (text, or a JSON object
  as a data part), which continues. An answer already delivered (the process died before
  recording it) is never sent twice: the caller sends only while the task still asks.
* each message sent is a call for the agent's ``rate_limit`` and ``token_budget``
  (:mod:`kneo.engine.agent_limits`); the tokens are those the remote reports for its task.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from kneo.engine import agent_limits
from kneo.engine.agent_host import UnitAgentHost
from kneo.engine.outcomes import StepFailure
from kneo.engine.signals import RunPaused
from kneo.errors import ErrorCode, KneoError
from kneo.policy.access import HostAccess
from kneo.spec.compiled import CompiledStep
from kneo.spec.models import RemoteAgentSpec
from kneo.usage import count_spent

if TYPE_CHECKING:
    from kneo.engine.workflow_run import WorkflowRun

__all__ = [
    "RemoteAgentError",
    "RemoteAgents",
    "RemoteTask",
    "RemoteTurn",
    "run_remote_agent",
]

_TOKENS = ("input_tokens", "output_tokens")
#: The remote task's states the engine reads (A2A's, lower-case with dashes).
ASKING = "input-required"
COMPLETED = "completed"


class RemoteAgentError(KneoError):
    """The remote agent failed, rejected or cancelled the task, or could not be reached."""

    code = ErrorCode.remote_agent_failed


@dataclass(frozen=True)
class RemoteTask:
    """A remote task the unit started: where to send the answer, what to watch."""

    task_id: str
    context_id: str


@dataclass(frozen=True)
class RemoteTurn:
    """Where one exchange with the remote task ended: the task, its state (``completed``,
    ``input-required``, ``failed``, ...), and its text (the answer, the question, the
    reason); ``data``: the structured part of a question, if the remote sent one."""

    task: RemoteTask
    state: str
    text: str
    data: Mapping[str, Any] | None = None
    usage: Mapping[str, int] = field(default_factory=dict)


class RemoteAgents(Protocol):
    """Calls remote agents (the platform's is the A2A SDK's client behind the kernel)."""

    def exchange(
        self,
        remote: RemoteAgentSpec,
        *,
        access: HostAccess | None,
        task: RemoteTask | None,
        message: str | Mapping[str, Any] | None,
        on_event: Callable[[dict[str, Any]], None],
        path: str,
    ) -> RemoteTurn:
        """Send ``message`` (a new task when ``task`` is ``None``; else an answer to it, sent
        only while it still asks) and follow the task until it ends or asks; ``message``
        ``None``: follow ``task`` only. ``on_event`` gets each progress event (the first one
        names the task); refusals of the kernel raise ``AccessDenied``."""
        ...


def run_remote_agent(run: WorkflowRun, key: str, step: CompiledStep, text: str) -> str:
    """Unit ``key`` of ``run``: the remote agent's answer to ``text`` (pausing for a person
    whenever the remote task asks)."""
    assert step.agent is not None and step.agent.remote is not None
    remote, agents = step.agent.remote, run.engine.remote_agents
    path = f"components.agents.{step.agent.name}.remote"
    if agents is None:
        raise StepFailure(
            f"step '{step.id}': no remote agent client is configured in this process",
            code=ErrorCode.remote_agent_failed,
        )
    host = UnitAgentHost(run, key, step)
    record = host.agent_record()
    with host.lock:
        record.setdefault("agent", step.agent.name)
        state: dict[str, Any] = record.setdefault("remote", {"protocol": remote.protocol})
    while True:
        task = _task(state)
        message: str | Mapping[str, Any] | None
        if task is None:
            message = text
        elif state.get("state") == ASKING:
            message = _answer(run, key, step, state)  # pauses until a person answered
        else:
            message = None  # the process died mid-call: follow the same task again

        if message is not None:  # a call: the agent's rate_limit and token_budget first
            _limits(host, step, record)

        def on_event(event: dict[str, Any]) -> None:
            _progress(host, state, event)

        turn = agents.exchange(
            remote,
            access=run.access,
            task=task,
            message=message,
            on_event=on_event,
            path=path,
        )
        with host.lock:
            state.update(
                task_id=turn.task.task_id, context_id=turn.task.context_id, state=turn.state
            )
        _count(host, step, record, state, turn.usage)
        if turn.state == COMPLETED:
            host.emit("remote_agent_progress", {"state": COMPLETED, "task_id": turn.task.task_id})
            return turn.text
        if turn.state != ASKING:
            raise RemoteAgentError(
                f"step '{step.id}': the remote agent's task ended {turn.state}"
                + (f": {turn.text}" if turn.text else ""),
                step_id=step.id,
            )
        with host.lock:
            state["round"] = int(state.get("round", 0)) + 1
            state["question"] = turn.text
            state["question_data"] = dict(turn.data) if turn.data else None
        host.commit("remote_agent_asked")


def _limits(host: UnitAgentHost, step: CompiledStep, record: dict[str, Any]) -> None:
    """Before a message to the remote: the agent's ``rate_limit`` (each message is a call)
    and ``token_budget`` (on the tokens the remote reported), as for a native agent."""
    agent = step.agent
    assert agent is not None
    if agent.token_budget is None and agent.rate_limit is None:
        return
    used = agent_limits.tokens_of(host.run_usage_of(agent.name))

    def ask(fields: dict[str, Any]) -> None:
        host.pause([host.new_request(**fields)])

    agent_limits.before_call(agent, record, used, host.decision, ask)


def _count(
    host: UnitAgentHost,
    step: CompiledStep,
    record: dict[str, Any],
    state: dict[str, Any],
    usage: Mapping[str, int],
) -> None:
    """The tokens the remote reports for its task (a total so far): what is new since the
    last exchange counts as one call's, checked against ``token_budget.per_call``."""
    assert step.agent is not None
    if not usage:
        return
    seen = state.get("usage") or {}
    new = {k: max(0, int(usage.get(k, 0)) - int(seen.get(k, 0))) for k in _TOKENS}
    with host.lock:
        state["usage"] = {k: int(usage.get(k, 0)) for k in _TOKENS}
        count_spent(record, new)
        turn = int(record["spent"][0])
        agent_limits.after_call(step.agent, record, turn, agent_limits.tokens_of(new))
    host.commit("remote_agent_usage")


def _task(state: Mapping[str, Any]) -> RemoteTask | None:
    task_id = state.get("task_id")
    if not task_id:
        return None
    return RemoteTask(str(task_id), str(state.get("context_id") or ""))


def _progress(host: UnitAgentHost, state: dict[str, Any], event: dict[str, Any]) -> None:
    """A progress event of the remote task: a trace event, and the task checkpointed the
    first time the remote names it (a restart then follows that task, never a new one)."""
    task_id = event.get("task_id")
    first = bool(task_id) and state.get("task_id") != task_id
    if first:
        with host.lock:
            state.update(task_id=task_id, context_id=event.get("context_id") or "")
            state["state"] = event.get("state") or "submitted"
    host.emit("remote_agent_progress", dict(event))
    if first:
        host.commit("remote_agent_task")


def _answer(
    run: WorkflowRun, key: str, step: CompiledStep, state: Mapping[str, Any]
) -> str | Mapping[str, Any]:
    """The person's answer to the remote's current question (pausing until there is one)."""
    assert step.agent is not None and step.agent.remote is not None
    remote = step.agent.remote
    round_no = int(state.get("round", 1))
    wait_key = f"remote:{key}:{round_no}"
    decision = run.decision(wait_key)
    if decision is None:
        context: dict[str, Any] = {
            "remote_agent": step.agent.name,
            "task_id": state.get("task_id"),
            "context_id": state.get("context_id"),
            "wait_name": wait_key,
        }
        if state.get("question_data"):
            context["remote_request"] = state.get("question_data")
        raise RunPaused(
            [
                run.new_request(
                    kind="question",
                    wait_key=wait_key,
                    step=step,
                    prompt=str(state.get("question") or "The remote agent needs input."),
                    decisions=("provided",),
                    context=context,
                    metadata={"wait_name": wait_key},
                    assignee=remote.assignee,
                    timeout_seconds=remote.answer_timeout_seconds,
                )
            ]
        )
    content = decision.get("content")
    if isinstance(content, Mapping):
        return dict(content)
    return "" if content is None else str(content)
