"""The OpenAI Agents SDK bridge: the SDK's ``Runner`` runs the team's ``Agent``, with

* its model replaced by the spec's (``RunConfig.model``: the SDK's chat completions model
  over the kernel's client), each reply checkpointed and replayed by the session;
* each ``FunctionTool`` of the agent (and of the agents it hands off to) invoking through the
  session: the tool guard, ``approval_required`` as a durable Kneo approval, results
  checkpointed and replayed.

The SDK's own tracing is off (the run's trace is Kneo's). The SDK runs on an event loop of its
own in a helper thread (the engine is synchronous).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kneo.bridges.model_client import async_openai_client
from kneo.engine.bridges import BridgeSession
from kneo.policy.access import HostAccess
from kneo.settings import Settings

__all__ = ["run_openai_agent"]


if TYPE_CHECKING:
    from agents import Agent, FunctionTool, ToolContext
    from agents.models.interface import Model


def run_openai_agent(
    agent: Agent[Any], session: BridgeSession, text: str, access: HostAccess, settings: Settings
) -> str:
    """The ``Agent``'s final output to ``text`` (as text)."""
    from agents import ModelSettings, OpenAIChatCompletionsModel, RunConfig

    spec = session.agent
    path = f"components.agents.{spec.name}.model"
    client = async_openai_client(spec.model, access, settings, path=path)
    inner = OpenAIChatCompletionsModel(model=spec.model.name, openai_client=client)
    settings_kw: dict[str, Any] = {}
    if spec.model.temperature is not None:
        settings_kw["temperature"] = spec.model.temperature
    if spec.model.max_tokens is not None:
        settings_kw["max_tokens"] = spec.model.max_tokens
    config = RunConfig(
        model=_replayed_model(inner, session),
        model_settings=ModelSettings(**settings_kw) if settings_kw else None,
        tracing_disabled=True,
    )
    guarded = _guarded(agent, session, {})
    max_turns = spec.max_iterations or spec.strategy.max_iterations

    async def go() -> Any:
        from agents import Runner

        try:
            return await Runner.run(guarded, text, run_config=config, max_turns=max_turns)
        finally:
            await client.close()

    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="kneo-bridge") as pool:
        result = pool.submit(asyncio.run, go()).result()
    output = result.final_output
    return output if isinstance(output, str) else json.dumps(_plain(output), default=str)


def _plain(value: object) -> object:
    dump = getattr(value, "model_dump", None)
    return dump(mode="json") if callable(dump) else value


def _guarded(agent: Agent[Any], session: BridgeSession, seen: dict[int, Agent[Any]]) -> Agent[Any]:
    """A clone of ``agent`` (and of the agents it hands off to) whose function tools call
    through ``session``."""
    from agents import Agent, FunctionTool

    if id(agent) in seen:
        return seen[id(agent)]
    tools = [
        _tool(t, session) if isinstance(t, FunctionTool) else t for t in getattr(agent, "tools", [])
    ]
    clone = agent.clone(tools=tools)
    seen[id(agent)] = clone
    handoffs = [_guarded(h, session, seen) if isinstance(h, Agent) else h for h in agent.handoffs]
    clone.handoffs = handoffs
    return clone


def _tool(tool: FunctionTool, session: BridgeSession) -> FunctionTool:
    original = tool.on_invoke_tool

    async def invoke(context: ToolContext[Any], raw: str) -> Any:
        arguments = json.loads(raw or "{}")

        async def call(given: dict[str, Any]) -> Any:
            return await original(context, json.dumps(given))

        def handler(given: dict[str, Any]) -> Any:
            return asyncio.run(call(given))

        return await asyncio.to_thread(
            session.tool,
            tool.name,
            arguments if isinstance(arguments, Mapping) else {"input": arguments},
            handler,
            parameters=tool.params_json_schema,
            description=tool.description,
        )

    # the session decides approvals: the SDK's own needs_approval would stop it by itself
    return dataclasses.replace(tool, on_invoke_tool=invoke, needs_approval=False)


def _replayed_model(inner: Model, session: BridgeSession) -> Model:
    from agents import ModelResponse, Usage
    from agents.models.interface import Model
    from openai.types.responses import ResponseOutputItem
    from pydantic import TypeAdapter

    items = TypeAdapter(list[ResponseOutputItem])

    class Replayed(Model):
        """The spec's model, each reply checkpointed; a recorded reply replayed."""

        async def get_response(self, *args: Any, **kwargs: Any) -> Any:
            recorded = await asyncio.to_thread(session.next_model)
            if recorded is not None:
                usage = recorded.get("usage") or {}
                return ModelResponse(
                    output=items.validate_python(recorded["output"]),
                    usage=Usage(
                        requests=1,
                        input_tokens=int(usage.get("input_tokens", 0)),
                        output_tokens=int(usage.get("output_tokens", 0)),
                        total_tokens=int(usage.get("input_tokens", 0))
                        + int(usage.get("output_tokens", 0)),
                    ),
                    response_id=recorded.get("response_id"),
                )
            response = await inner.get_response(*args, **kwargs)
            usage = {
                "input_tokens": int(response.usage.input_tokens or 0),
                "output_tokens": int(response.usage.output_tokens or 0),
            }
            payload = {
                "output": [item.model_dump(mode="json") for item in response.output],
                "usage": usage,
                "response_id": response.response_id,
            }
            await asyncio.to_thread(session.record_model, payload, usage)
            return response

        def stream_response(self, *args: object, **kwargs: object) -> Any:
            raise NotImplementedError("a bridged agent runs without streaming")

    return Replayed()
