"""Chat completions through the ``openai`` SDK: OpenAI, Azure OpenAI, compatible servers.

``openai`` (alias ``openai-compatible``) talks to OpenAI or any server speaking
``/v1/chat/completions`` (vLLM, Ollama, gateways, a local fake in tests) at ``model.base_url``;
``azure-openai`` to an Azure OpenAI resource (``base_url`` is the resource's endpoint,
``model.name`` the deployment, ``model.api_version`` the API version). Both are adapters
(:mod:`kneo.engine.providers.remote`): the mapping between Kneo's messages and the chat
completions format, nothing else. The SDK is imported when the first client is made, so
importing :mod:`kneo.engine` stays cheap.

Servers that speak the format differ where it leaves room; what each kind needs is declared
once in :data:`QUIRKS` (chosen by :func:`server_kind`), never tested for at the call site:
llama.cpp's server, for one, answers HTTP 500 to an assistant tool-call message whose
``content`` is ``null``, and to ``tool_choice: required`` (provider ``llama-cpp``). ``tool_choice`` is always sent when tools are offered (``auto``
unless ``model.tool_choice`` says otherwise): without it llama.cpp leaves the tools out of
the prompt and the model never calls one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from kneo.engine.providers.base import ChatMessage, ModelReply, StopReason, ToolCall
from kneo.engine.providers.remote import (
    Fault,
    bad_response,
    sdk_fault,
    tool_arguments,
    tool_choice,
)
from kneo.errors import ErrorCode, ProviderError
from kneo.spec.models import ModelSpec
from kneo.tools import ToolDefinition

if TYPE_CHECKING:
    import httpx2
    from openai import AzureOpenAI, OpenAI
    from openai.types import CompletionUsage

#: The Azure OpenAI API version used when ``model.api_version`` is unset (the GA version).
AZURE_API_VERSION = "2024-10-21"
_FINISH: dict[str, StopReason] = {
    "stop": "stop",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "length": "max_tokens",
    "content_filter": "content_filter",
}


@dataclass(frozen=True)
class ServerQuirks:
    """What one kind of chat-completions server needs where the format leaves room."""

    #: the ``content`` of an assistant message that only calls tools: OpenAI documents
    #: ``null``; llama.cpp's server answers ``null`` with HTTP 500 and takes ``""``
    tool_call_content: str | None
    #: the field that bounds the reply: OpenAI's own API refuses ``max_tokens`` for its
    #: reasoning models; compatible servers know only ``max_tokens``
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"]
    #: ``tool_choice: required`` is understood (llama-cpp-python's server fails it with 500)
    tool_choice_required: bool = True


#: Server kind (:func:`server_kind`) -> its quirks.
QUIRKS: Mapping[str, ServerQuirks] = {
    "openai": ServerQuirks(tool_call_content=None, max_tokens_field="max_completion_tokens"),
    "azure-openai": ServerQuirks(tool_call_content=None, max_tokens_field="max_completion_tokens"),
    # vLLM, Ollama, gateways: "" is valid wherever null is, the reverse is not
    "compatible": ServerQuirks(tool_call_content="", max_tokens_field="max_tokens"),
    "llama-cpp": ServerQuirks(
        tool_call_content="", max_tokens_field="max_tokens", tool_choice_required=False
    ),
}


def server_kind(model: ModelSpec) -> str:
    """The :data:`QUIRKS` entry for ``model``: ``llama-cpp`` and Azure by provider name,
    OpenAI's own API (``openai`` without ``base_url``), else any other compatible server."""
    if model.provider in ("azure-openai", "llama-cpp"):
        return model.provider
    if model.provider == "openai" and not model.base_url:
        return "openai"
    return "compatible"


def openai_tool_choice(
    model: ModelSpec, tools: Sequence[ToolDefinition], quirks: ServerQuirks
) -> Any:
    """The request's ``tool_choice`` when ``tools`` are offered (``auto`` by default).
    ``required`` of one tool is that tool by name where the server lacks ``required``."""
    mode, name = tool_choice(model, tools)
    if mode == "required" and not quirks.tool_choice_required:
        if len(tools) != 1:
            raise ProviderError(
                f"Provider '{model.provider}' (model '{model.name}') does not support "
                f"tool_choice: required with {len(tools)} tools offered; use auto, or "
                "name the tool ({name: TOOL}).",
                code=ErrorCode.provider_config_invalid,
                field="model.tool_choice",
            )
        name = tools[0].name
    if name is not None:
        return {"type": "function", "function": {"name": name}}
    return mode


def _chat_request(
    model: ModelSpec,
    messages: Sequence[ChatMessage],
    tools: Sequence[ToolDefinition],
    **streaming: Any,
) -> dict[str, Any]:
    """The chat completions request for ``model``, the server's quirks applied: one builder,
    so a streamed call asks exactly what a whole one asks (``streaming``: the stream keys)."""
    quirks = QUIRKS[server_kind(model)]
    request: dict[str, Any] = {
        "model": model.name,
        "messages": [to_openai_message(m, quirks) for m in messages],
        **streaming,
    }
    if tools:
        request["tools"] = [t.openai_schema() for t in tools]
        request["tool_choice"] = openai_tool_choice(model, tools, quirks)
    if model.temperature is not None:
        request["temperature"] = model.temperature
    if model.max_tokens is not None:
        request[quirks.max_tokens_field] = model.max_tokens
    return request


class ChatCompletions:
    """The chat completions adapter (``openai``)."""

    name = "openai"

    def client(
        self,
        *,
        key: str,
        base_url: str | None,
        timeout: float | None,
        model: ModelSpec,
        http: httpx2.Client,
    ) -> OpenAI:
        from openai import OpenAI

        if not base_url:  # a local server has no default endpoint
            raise ProviderError(
                f"Provider '{model.provider}' (model '{model.name}') needs model.base_url: "
                "the server's /v1 URL, e.g. http://127.0.0.1:8080/v1",
                code=ErrorCode.provider_config_invalid,
                field="model.base_url",
            )
        return OpenAI(
            api_key=key,
            base_url=base_url,  # given even when default: OPENAI_BASE_URL is never read
            max_retries=0,
            timeout=timeout,
            http_client=http,
        )

    def call(
        self,
        client: OpenAI,
        *,
        model: ModelSpec,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolDefinition],
    ) -> ModelReply:
        request = _chat_request(model, messages, tools)
        return from_openai_response(client.chat.completions.create(**request), model)

    def call_stream(
        self,
        client: OpenAI,
        *,
        model: ModelSpec,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolDefinition],
        on_text: Callable[[str], None],
    ) -> ModelReply:
        """:meth:`call` with ``stream: true``: each piece of text to ``on_text`` as it
        comes, the reply assembled from the chunks (tool calls by index, the usage last)."""
        request = _chat_request(
            model, messages, tools, stream=True, stream_options={"include_usage": True}
        )
        text: list[str] = []
        calls: dict[int, dict[str, Any]] = {}
        finish, usage, ident = None, None, "stream"
        for chunk in client.chat.completions.create(**request):
            ident = getattr(chunk, "id", None) or ident
            usage = getattr(chunk, "usage", None) or usage
            for choice in getattr(chunk, "choices", None) or []:
                finish = choice.finish_reason or finish
                delta = choice.delta
                if delta.content:
                    text.append(delta.content)
                    on_text(delta.content)
                for piece in delta.tool_calls or []:
                    call = calls.setdefault(piece.index, {"id": "", "name": "", "arguments": ""})
                    call["id"] = piece.id or call["id"]
                    if piece.function is not None:
                        call["name"] += piece.function.name or ""
                        call["arguments"] += piece.function.arguments or ""
        return from_openai_response(_assembled(ident, model, text, calls, finish, usage), model)

    def fault(self, exc: BaseException) -> Fault | None:
        import openai

        return sdk_fault(openai, exc)


class AzureChatCompletions(ChatCompletions):
    """Chat completions on an Azure OpenAI resource (``azure-openai``)."""

    name = "azure-openai"

    def client(
        self,
        *,
        key: str,
        base_url: str | None,
        timeout: float | None,
        model: ModelSpec,
        http: httpx2.Client,
    ) -> AzureOpenAI:
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
            http_client=http,
        )


# ---------------------------------------------------------------------- mapping


def to_openai_message(message: ChatMessage, quirks: ServerQuirks) -> dict[str, Any]:
    """One :class:`ChatMessage` as a chat-completions message (tool arguments as JSON text),
    shaped for the server's ``quirks``."""
    data: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.role == "assistant" and message.tool_calls:
        if not message.content:
            data["content"] = quirks.tool_call_content
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


def _assembled(
    ident: str,
    model: ModelSpec,
    text: list[str],
    calls: dict[int, dict[str, Any]],
    finish: str | None,
    usage: CompletionUsage | None,
) -> Any:
    """The chat completion a stream's chunks add up to."""
    from openai.types.chat import ChatCompletion

    message: dict[str, Any] = {"role": "assistant", "content": "".join(text) or None}
    if calls:
        message["tool_calls"] = [
            {
                "id": c["id"],
                "type": "function",
                "function": {"name": c["name"], "arguments": c["arguments"]},
            }
            for _, c in sorted(calls.items())
        ]
    body: dict[str, Any] = {
        "id": ident,
        "object": "chat.completion",
        "created": 0,
        "model": model.name,
        "choices": [{"index": 0, "message": message, "finish_reason": finish or "stop"}],
    }
    if usage is not None:
        body["usage"] = usage.model_dump()
    return ChatCompletion.model_validate(body)


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
        cached = getattr(getattr(reported, "prompt_tokens_details", None), "cached_tokens", None)
        if isinstance(cached, int) and cached > 0:  # part of input_tokens (priced apart)
            usage["cached_input_tokens"] = cached
    stop = _FINISH.get(str(getattr(choice, "finish_reason", "") or ""), "other")
    return ModelReply(text=message.content, tool_calls=tuple(calls), usage=usage, stop_reason=stop)


__all__ = [
    "AZURE_API_VERSION",
    "QUIRKS",
    "AzureChatCompletions",
    "ChatCompletions",
    "ServerQuirks",
    "from_openai_response",
    "openai_tool_choice",
    "server_kind",
    "to_openai_message",
]
