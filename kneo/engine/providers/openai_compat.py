"""Chat completions through the ``openai`` SDK: OpenAI, Azure OpenAI, compatible servers.

``openai`` (alias ``openai-compatible``) talks to OpenAI or any server speaking
``/v1/chat/completions`` (vLLM, Ollama, gateways, a local fake in tests) at ``model.base_url``;
``azure-openai`` to an Azure OpenAI resource (``base_url`` is the resource's endpoint,
``model.name`` the deployment, ``model.api_version`` the API version). Both are adapters
(:mod:`kneo.engine.providers.remote`): the mapping between Kneo's messages and the chat
completions format, nothing else. The SDK is imported when the first client is made, so
importing :mod:`kneo.engine` stays cheap.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from kneo.engine.providers.base import ChatMessage, ModelReply, StopReason, ToolCall
from kneo.engine.providers.remote import (
    Fault,
    bad_response,
    sdk_fault,
    tool_arguments,
)
from kneo.errors import ErrorCode, ProviderError
from kneo.spec.models import ModelSpec
from kneo.tools import ToolDefinition

#: The Azure OpenAI API version used when ``model.api_version`` is unset (the GA version).
AZURE_API_VERSION = "2024-10-21"
_FINISH: dict[str, StopReason] = {
    "stop": "stop",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "length": "max_tokens",
    "content_filter": "content_filter",
}


class ChatCompletions:
    """The chat completions adapter (``openai``)."""

    name = "openai"

    def client(
        self, *, key: str, base_url: str | None, timeout: float | None, model: ModelSpec
    ) -> Any:
        from openai import OpenAI

        return OpenAI(
            api_key=key,
            base_url=base_url,  # given even when default: OPENAI_BASE_URL is never read
            max_retries=0,
            timeout=timeout,
        )

    def call(
        self,
        client: Any,
        *,
        model: ModelSpec,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolDefinition],
    ) -> ModelReply:
        request: dict[str, Any] = {
            "model": model.name,
            "messages": [to_openai_message(m) for m in messages],
        }
        if tools:
            request["tools"] = [t.openai_schema() for t in tools]
        if model.temperature is not None:
            request["temperature"] = model.temperature
        if model.max_tokens is not None:
            request[self.max_tokens_field(model)] = model.max_tokens
        return from_openai_response(client.chat.completions.create(**request), model)

    @staticmethod
    def max_tokens_field(model: ModelSpec) -> str:
        """OpenAI's own API takes ``max_completion_tokens`` (its reasoning models refuse
        ``max_tokens``); compatible servers know ``max_tokens``."""
        own = model.provider == "openai" and not model.base_url
        return "max_completion_tokens" if own else "max_tokens"

    def fault(self, exc: BaseException) -> Fault | None:
        import openai

        return sdk_fault(openai, exc)


class AzureChatCompletions(ChatCompletions):
    """Chat completions on an Azure OpenAI resource (``azure-openai``)."""

    name = "azure-openai"

    def client(
        self, *, key: str, base_url: str | None, timeout: float | None, model: ModelSpec
    ) -> Any:
        from openai import AzureOpenAI

        if not base_url:
            raise ProviderError(
                f"Provider 'azure-openai' (model '{model.name}') needs model.base_url: the "
                "resource's endpoint, https://<resource>.openai.azure.com",
                code=ErrorCode.provider_config_invalid,
                field="model.base_url",
            )
        return AzureOpenAI(
            api_key=key,
            azure_endpoint=base_url,  # AZURE_OPENAI_ENDPOINT is never read
            api_version=model.api_version or AZURE_API_VERSION,
            max_retries=0,
            timeout=timeout,
        )

    @staticmethod
    def max_tokens_field(model: ModelSpec) -> str:
        return "max_completion_tokens"


# ---------------------------------------------------------------------- mapping


def to_openai_message(message: ChatMessage) -> dict[str, Any]:
    """One :class:`ChatMessage` as a chat-completions message (tool arguments as JSON text)."""
    data: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.role == "assistant" and message.tool_calls:
        data["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {
                    "name": call.name,
                    "arguments": json.dumps(call.arguments, sort_keys=True),
                },
            }
            for call in message.tool_calls
        ]
    if message.role == "tool":
        data["tool_call_id"] = message.tool_call_id
        data["content"] = message.content or ""
    elif message.name is not None:
        data["name"] = message.name
    return data


def from_openai_response(response: Any, model: ModelSpec) -> ModelReply:
    """The first choice of a chat completion as a :class:`ModelReply`."""
    choices = getattr(response, "choices", None) or []
    if not choices:
        raise bad_response(model, "returned no choices")
    choice = choices[0]
    message = choice.message
    calls: list[ToolCall] = []
    for raw in getattr(message, "tool_calls", None) or []:
        function = getattr(raw, "function", None)
        if function is None:  # a non-function tool call type this engine does not run
            continue
        arguments = tool_arguments(function.arguments, function.name, model)
        calls.append(ToolCall(id=raw.id, name=function.name, arguments=arguments))
    usage: dict[str, int] = {}
    reported = getattr(response, "usage", None)
    if reported is not None:
        for ours, theirs in (
            ("input_tokens", "prompt_tokens"),
            ("output_tokens", "completion_tokens"),
        ):
            value = getattr(reported, theirs, None)
            if isinstance(value, int):
                usage[ours] = value
    stop = _FINISH.get(str(getattr(choice, "finish_reason", "") or ""), "other")
    return ModelReply(text=message.content, tool_calls=tuple(calls), usage=usage, stop_reason=stop)


__all__ = [
    "AZURE_API_VERSION",
    "AzureChatCompletions",
    "ChatCompletions",
    "from_openai_response",
    "to_openai_message",
]
