"""The LangGraph bridge: the team's compiled graph runs as LangGraph runs it, with

* the model: when the agent's factory takes a ``model`` argument, Kneo passes a LangChain
  chat model speaking to the spec's model (OpenAI-compatible, over the kernel's client), each
  reply checkpointed and replayed by the session;
* the tools: every tool of the graph's ``ToolNode``s is swapped for one calling through the
  session (the tool guard, ``approval_required`` as a durable Kneo approval, results
  checkpointed and replayed).

The graph's input is ``{"messages": [the step's text]}``; its answer is the content of the
last message of its output state.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from kneo.bridges.model_client import OPENAI_COMPATIBLE
from kneo.destinations import DEFAULT_ENDPOINTS
from kneo.engine.bridges import BridgeSession
from kneo.errors import ErrorCode, ProviderError
from kneo.kernel import http_client, secret
from kneo.policy.access import HostAccess
from kneo.settings import Settings

if TYPE_CHECKING:
    from langchain_core.callbacks import CallbackManagerForLLMRun
    from langchain_core.tools import BaseTool
    from langgraph.pregel import Pregel
    from openai import OpenAI

    from kneo.spec.models import AgentSpec

__all__ = ["chat_model", "run_graph"]


def run_graph(
    graph: Pregel[Any, Any],
    session: BridgeSession,
    text: str,
    access: HostAccess,
    settings: Settings,
) -> str:
    """The graph's answer to ``text``."""
    _guard_tools(graph, session)
    limit = 2 * (session.agent.max_iterations or session.agent.strategy.max_iterations) + 2
    state = graph.invoke({"messages": [("user", text)]}, config={"recursion_limit": limit})
    messages = state.get("messages") if isinstance(state, dict) else None
    if not messages:
        return json.dumps(state, default=str)
    content = messages[-1].content
    return content if isinstance(content, str) else json.dumps(content, default=str)


def _guard_tools(graph: Pregel[Any, Any], session: BridgeSession) -> None:
    from langchain_core.tools import BaseTool, StructuredTool
    from langgraph.prebuilt import ToolNode

    for node in getattr(graph, "nodes", {}).values():
        bound = getattr(node, "bound", None)
        if not isinstance(bound, ToolNode):
            continue
        for name, tool in list(bound.tools_by_name.items()):
            if not isinstance(tool, BaseTool) or getattr(tool, "_kneo_guarded", False):
                continue
            schema = tool.tool_call_schema
            parameters = schema.model_json_schema() if hasattr(schema, "model_json_schema") else {}
            guarded = StructuredTool.from_function(
                func=_through(session, tool, parameters),
                name=name,
                description=tool.description,
                args_schema=tool.args_schema,
            )
            object.__setattr__(guarded, "_kneo_guarded", True)
            bound.tools_by_name[name] = guarded


def _through(
    session: BridgeSession, tool: BaseTool, parameters: dict[str, Any]
) -> Callable[..., str]:
    def call(**arguments: object) -> str:
        def handler(given: dict[str, Any]) -> Any:
            return tool.invoke(given)

        return session.tool(
            tool.name,
            arguments,
            handler,
            parameters=parameters,
            description=tool.description,
        )

    return call


def chat_model(session: BridgeSession, access: HostAccess, settings: Settings) -> Any:
    """A LangChain chat model for the spec's model, its replies checkpointed and replayed."""
    from langchain_core.language_models.chat_models import BaseChatModel
    from langchain_core.messages import (
        AIMessage,
        BaseMessage,
        convert_to_openai_messages,
        messages_from_dict,
        messages_to_dict,
    )
    from langchain_core.outputs import ChatGeneration, ChatResult
    from langchain_core.utils.function_calling import convert_to_openai_tool
    from openai import OpenAI

    spec = session.agent
    path = f"components.agents.{spec.name}.model"
    client = _client(OpenAI, spec, access, settings, path)

    class KneoChatModel(BaseChatModel):
        """The spec's model, through the run's grant and the bridge session."""

        offered: list[dict[str, Any]] = []

        @property
        def _llm_type(self) -> str:
            return "kneo"

        def bind_tools(self, tools: Sequence[Any], **kwargs: object) -> Any:
            return self.model_copy(update={"offered": [convert_to_openai_tool(t) for t in tools]})

        def _generate(
            self,
            messages: list[BaseMessage],
            stop: list[str] | None = None,
            run_manager: CallbackManagerForLLMRun | None = None,
            **kwargs: object,
        ) -> Any:
            recorded = session.next_model()
            if recorded is not None:
                [message] = messages_from_dict([recorded["message"]])
                return ChatResult(generations=[ChatGeneration(message=message)])
            body = _request(spec, convert_to_openai_messages(messages), self.offered)
            reply = client.chat.completions.create(**body)
            choice = reply.choices[0].message
            calls = [
                {
                    "name": c.function.name,
                    "args": json.loads(c.function.arguments or "{}"),
                    "id": c.id,
                }
                for c in choice.tool_calls or []
            ]
            usage = {
                "input_tokens": int(getattr(reply.usage, "prompt_tokens", 0) or 0),
                "output_tokens": int(getattr(reply.usage, "completion_tokens", 0) or 0),
            }
            message = AIMessage(content=choice.content or "", tool_calls=calls)
            session.record_model({"message": messages_to_dict([message])[0]}, usage)
            return ChatResult(generations=[ChatGeneration(message=message)])

    return KneoChatModel()


def _request(
    spec: AgentSpec, messages: list[dict[str, Any]], offered: list[dict[str, Any]]
) -> dict[str, Any]:
    """The chat completion request for the spec's model: its name and temperature, the
    conversation, and the tools the graph bound (none when it bound none)."""
    body: dict[str, Any] = {"model": spec.model.name, "messages": messages}
    if offered:
        body["tools"] = offered
    if spec.model.temperature is not None:
        body["temperature"] = spec.model.temperature
    return body


def _client(
    openai: type[OpenAI], spec: AgentSpec, access: HostAccess, settings: Settings, path: str
) -> OpenAI:
    if spec.model.provider not in OPENAI_COMPATIBLE:
        raise ProviderError(
            f"{path}.provider: a bridged agent calls an OpenAI-compatible server, not "
            f"{spec.model.provider!r}",
            code=ErrorCode.provider_config_invalid,
        )
    resolved, reach = access.model_call(spec.model, path=path)
    base_url = resolved.base_url or DEFAULT_ENDPOINTS.get(resolved.provider)
    key = (
        secret(reach, settings.environ, resolved.api_key_env, path=f"{path}.api_key_env")
        if resolved.api_key_env
        else None
    )
    timeout = spec.model.timeout_seconds or settings.provider_timeout_seconds
    http = http_client(reach, path=f"model {spec.model.name!r}", timeout=timeout)
    return openai(api_key=key or "no-key", base_url=base_url, max_retries=0, http_client=http)
