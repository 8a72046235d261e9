"""Claude through the ``anthropic`` SDK: the Messages API (``provider: anthropic``).

An adapter (:mod:`kneo.engine.providers.remote`): Kneo's messages as a Messages request and
the reply back, nothing else. The mapping:

* system messages become the request's ``system`` text (in order; the Messages API has no
  system role inside the conversation);
* an assistant turn is its ``text`` block and one ``tool_use`` block per tool call (id, name,
  input); the results of a turn's calls go back as ``tool_result`` blocks of one ``user``
  message, in the calls' order, as the API requires for parallel tool use;
* consecutive messages of one role are merged (the API wants user and assistant to
  alternate);
* ``max_tokens`` is required by the API: ``model.max_tokens``, else 4096; ``temperature`` is
  not sent (the current API version refuses sampling parameters, and SDK 2 has none);
* stop reasons: ``end_turn``/``stop_sequence`` → ``stop``, ``tool_use`` → ``tool_calls``,
  ``max_tokens`` → ``max_tokens``, ``refusal`` → ``content_filter``;
* usage: ``input_tokens`` (plus tokens read from and written to the prompt cache) and
  ``output_tokens``.

The SDK is an extra (``pip install 'kneo-platform[anthropic]'``), imported when the first
client is made.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from kneo.engine.providers.base import ChatMessage, ModelReply, StopReason, ToolCall
from kneo.engine.providers.remote import (
    Fault,
    sdk_fault,
    tool_arguments,
    tool_choice,
)
from kneo.errors import ConfigError, ErrorCode
from kneo.spec.models import ModelSpec
from kneo.tools import ToolDefinition

if TYPE_CHECKING:
    import httpx2
    from anthropic import Anthropic

#: ``max_tokens`` sent when the spec sets none (the Messages API requires one).
DEFAULT_MAX_TOKENS = 4096
#: ``model.tool_choice`` -> the Messages API's ``tool_choice.type``
_CHOICE = {"auto": "auto", "required": "any", "none": "none"}
_STOP: dict[str, StopReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "max_tokens",
    "model_context_window_exceeded": "max_tokens",
    "refusal": "content_filter",
}


class AnthropicMessages:
    """The Messages API adapter (``anthropic``)."""

    name = "anthropic"

    def client(
        self,
        *,
        key: str,
        base_url: str | None,
        timeout: float | None,
        model: ModelSpec,
        http: httpx2.Client,
    ) -> Anthropic:
        try:
            from anthropic import Anthropic
        except ImportError:
            raise ConfigError(
                "provider 'anthropic' needs the Anthropic SDK: pip install 'kneo-platform[anthropic]'",
                code=ErrorCode.provider_sdk_missing,
                provider="anthropic",
            ) from None
        kwargs: dict[str, Any] = {"api_key": key, "base_url": base_url, "max_retries": 0}
        if timeout is not None:
            kwargs["timeout"] = timeout
        return Anthropic(**kwargs, http_client=http)

    def call(
        self,
        client: Anthropic,
        *,
        model: ModelSpec,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolDefinition],
    ) -> ModelReply:
        request: dict[str, Any] = {
            "model": model.name,
            "max_tokens": model.max_tokens or DEFAULT_MAX_TOKENS,
            "messages": to_anthropic_messages(messages),
        }
        system = "\n\n".join(m.content or "" for m in messages if m.role == "system")
        if system:
            request["system"] = system
        if tools:
            request["tools"] = [
                {"name": t.name, "description": t.description, "input_schema": t.parameters}
                for t in tools
            ]
            mode, name = tool_choice(model, tools)
            request["tool_choice"] = (
                {"type": "tool", "name": name} if name else {"type": _CHOICE[mode]}
            )
        return from_anthropic_response(client.messages.create(**request), model)

    def fault(self, exc: BaseException) -> Fault | None:
        import anthropic

        return sdk_fault(anthropic, exc)


def to_anthropic_messages(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    """The conversation as Messages API ``messages`` (system messages left out)."""
    out: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            continue
        if message.role == "tool":
            role, blocks = "user", [_tool_result(message)]
        elif message.role == "assistant":
            role = "assistant"
            blocks = [{"type": "text", "text": message.content}] if message.content else []
            blocks += [
                {"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments}
                for c in message.tool_calls
            ]
        else:
            role, blocks = "user", [{"type": "text", "text": message.content or ""}]
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    return out


def _tool_result(message: ChatMessage) -> dict[str, Any]:
    return {
        "type": "tool_result",
        "tool_use_id": message.tool_call_id,
        "content": message.content or "",
    }


def from_anthropic_response(response: Any, model: ModelSpec) -> ModelReply:
    """A Messages API reply as a :class:`ModelReply`."""
    texts: list[str] = []
    calls: list[ToolCall] = []
    for block in getattr(response, "content", None) or []:
        kind = getattr(block, "type", None)
        if kind == "text":
            texts.append(block.text)
        elif kind == "tool_use":
            arguments = tool_arguments(block.input, block.name, model)
            calls.append(ToolCall(id=block.id, name=block.name, arguments=arguments))
    usage: dict[str, int] = {}
    reported = getattr(response, "usage", None)
    if reported is not None:
        inputs = [
            getattr(reported, f, None)
            for f in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
        ]
        if isinstance(inputs[0], int):
            usage["input_tokens"] = sum(v for v in inputs if isinstance(v, int))
            if isinstance(inputs[2], int) and inputs[2] > 0:  # read from the prompt cache
                usage["cached_input_tokens"] = inputs[2]
        if isinstance(getattr(reported, "output_tokens", None), int):
            usage["output_tokens"] = reported.output_tokens
    stop = _STOP.get(str(getattr(response, "stop_reason", "") or ""), "other")
    text = "".join(texts) if texts else None
    return ModelReply(text=text, tool_calls=tuple(calls), usage=usage, stop_reason=stop)


__all__ = ["AnthropicMessages", "from_anthropic_response", "to_anthropic_messages"]
