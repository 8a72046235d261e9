"""Gemini through the ``google-genai`` SDK: ``generateContent`` (``provider: google``).

An adapter (:mod:`kneo.engine.providers.remote`): Kneo's messages as a ``generateContent``
request on the Gemini API and the reply back, nothing else. The mapping:

* system messages become ``system_instruction``;
* an assistant turn is a ``model`` content: its text part and one ``functionCall`` part per
  tool call; the results of a turn's calls go back as ``functionResponse`` parts
  (``{"result": <text>}``) of one ``user`` content, in the calls' order (parallel function
  calling);
* a call's ``id`` is Gemini's when it sends one, else ``gemini_<turn>_<i>`` (unique in the
  conversation, so a decision stored under it is never reused by another call); its
  ``thoughtSignature`` is kept with the call (``ToolCall.meta``) and sent back, as thinking
  models require;
* tools are ``functionDeclarations`` with their JSON Schema as ``parametersJsonSchema``;
  automatic function calling is off (Kneo runs the calls);
* finish reasons: ``STOP`` → ``stop`` (``tool_calls`` when it called functions),
  ``MAX_TOKENS`` → ``max_tokens``, the safety ones → ``content_filter``;
* usage: ``promptTokenCount`` in, ``candidatesTokenCount`` + ``thoughtsTokenCount`` out.

The client is given the key, the endpoint and the API version (``v1beta``) explicitly, Vertex
AI off and its own retries off, so no ``GOOGLE_*`` or ``GEMINI_*`` variable is read. The SDK
is an extra (``pip install 'kneo-platform[google]'``), imported when the first client is made.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from kneo.engine.providers.base import ChatMessage, ModelReply, StopReason, ToolCall
from kneo.engine.providers.remote import (
    Fault,
    bad_response,
    error_text,
    retry_after,
    tool_arguments,
    tool_choice,
    transport_fault,
)
from kneo.errors import ConfigError, ErrorCode
from kneo.spec.models import ModelSpec
from kneo.tools import ToolDefinition

if TYPE_CHECKING:
    import httpx2
    from google import genai

API_VERSION = "v1beta"
#: prefix of the ids Kneo gives calls Gemini sent without one
_OWN_ID = "gemini_"
#: ``model.tool_choice`` -> ``function_calling_config.mode`` (a named tool: ``ANY`` of one)
_MODES = {"auto": "AUTO", "required": "ANY", "none": "NONE", "tool": "ANY"}
_FILTERED = {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"}


class GeminiContent:
    """The ``generateContent`` adapter (``google``)."""

    name = "google"

    def client(
        self,
        *,
        key: str,
        base_url: str | None,
        timeout: float | None,
        model: ModelSpec,
        http: httpx2.Client,
    ) -> genai.Client:
        try:
            from google import genai
            from google.genai import types
        except ImportError:
            raise ConfigError(
                "provider 'google' needs the Google GenAI SDK: pip install 'kneo-platform[google]'",
                code=ErrorCode.provider_sdk_missing,
                provider="google",
            ) from None
        return genai.Client(
            api_key=key,
            vertexai=False,
            http_options=types.HttpOptions(
                base_url=base_url,
                api_version=API_VERSION,
                timeout=int(timeout * 1000) if timeout is not None else None,  # milliseconds
                retry_options=types.HttpRetryOptions(attempts=1),
                httpx_client=http,  # the kernel's: the SDK sends through nothing else
            ),
        )

    def call(
        self,
        client: genai.Client,
        *,
        model: ModelSpec,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolDefinition],
    ) -> ModelReply:
        from google.genai import types

        config: dict[str, Any] = {
            "automatic_function_calling": types.AutomaticFunctionCallingConfig(disable=True)
        }
        system = "\n\n".join(m.content or "" for m in messages if m.role == "system")
        if system:
            config["system_instruction"] = system
        if tools:
            declarations = [
                types.FunctionDeclaration(
                    name=t.name, description=t.description, parameters_json_schema=t.parameters
                )
                for t in tools
            ]
            config["tools"] = [types.Tool(function_declarations=declarations)]
            mode, name = tool_choice(model, tools)
            config["tool_config"] = types.ToolConfig(
                function_calling_config=types.FunctionCallingConfig(
                    mode=types.FunctionCallingConfigMode(_MODES[mode]),
                    allowed_function_names=[name] if name else None,
                )
            )
        if model.temperature is not None:
            config["temperature"] = model.temperature
        if model.max_tokens is not None:
            config["max_output_tokens"] = model.max_tokens
        response = client.models.generate_content(
            model=model.name,
            contents=to_gemini_contents(messages),
            config=types.GenerateContentConfig(**config),
        )
        turn = sum(1 for m in messages if m.role == "assistant")
        return from_gemini_response(response, model, turn)

    def fault(self, exc: BaseException) -> Fault | None:
        import pydantic
        from google.genai import errors

        if isinstance(exc, pydantic.ValidationError):  # the SDK checks every reply's shape
            return Fault("bad_response", message="a reply that is not a generateContent response")
        if isinstance(exc, errors.APIError):
            response = getattr(exc, "response", None)
            return Fault(
                "status",
                int(exc.code or 0),
                str(exc.message or error_text(exc.details)),
                retry_after(getattr(response, "headers", None)),
            )
        return transport_fault(exc)


def to_gemini_contents(messages: Sequence[ChatMessage]) -> list[Any]:
    """The conversation as ``contents`` (system messages left out)."""
    from google.genai import types

    out: list[Any] = []
    for message in messages:
        if message.role == "system":
            continue
        if message.role == "tool":
            role = "user"
            parts = [
                types.Part(
                    function_response=types.FunctionResponse(
                        id=_their_id(message.tool_call_id),
                        name=message.name,
                        response={"result": message.content or ""},
                    )
                )
            ]
        elif message.role == "assistant":
            role = "model"
            parts = [types.Part(text=message.content)] if message.content else []
            parts += [_call_part(types, c) for c in message.tool_calls]
        else:
            role, parts = "user", [types.Part(text=message.content or "")]
        if out and out[-1].role == role:
            out[-1].parts.extend(parts)
        else:
            out.append(types.Content(role=role, parts=parts))
    return out


def _call_part(types: Any, call: ToolCall) -> Any:
    signature = call.meta.get("thought_signature")
    return types.Part(
        function_call=types.FunctionCall(
            id=_their_id(call.id),
            name=call.name,
            args=call.arguments,
        ),
        thought_signature=_signature(signature) if isinstance(signature, str) else None,
    )


def _their_id(call_id: str | None) -> str | None:
    """Gemini's own call id; ``None`` for one Kneo made up (Gemini sent none)."""
    return None if call_id is None or call_id.startswith(_OWN_ID) else call_id


def from_gemini_response(response: Any, model: ModelSpec, turn: int) -> ModelReply:
    """The first candidate of a ``generateContent`` reply as a :class:`ModelReply`."""
    candidates = getattr(response, "candidates", None) or []
    if not candidates:
        raise bad_response(model, "returned no candidates")
    candidate = candidates[0]
    texts: list[str] = []
    calls: list[ToolCall] = []
    content = getattr(candidate, "content", None)
    for part in getattr(content, "parts", None) or []:
        if getattr(part, "thought", None):
            continue  # a thought summary: not the answer
        if part.function_call is not None:
            fc = part.function_call
            name = str(fc.name or "")
            meta = {}
            if part.thought_signature:
                meta["thought_signature"] = base64.b64encode(part.thought_signature).decode()
            calls.append(
                ToolCall(
                    id=fc.id or f"{_OWN_ID}{turn}_{len(calls)}",
                    name=name,
                    arguments=tool_arguments(fc.args, name, model),
                    meta=meta,
                )
            )
        elif part.text:
            texts.append(part.text)
    return ModelReply(
        text="".join(texts) if texts else None,
        tool_calls=tuple(calls),
        usage=_usage(getattr(response, "usage_metadata", None)),
        stop_reason=_stop(getattr(candidate, "finish_reason", None), bool(calls)),
    )


def _usage(metadata: Any) -> dict[str, int]:
    if metadata is None:
        return {}
    usage: dict[str, int] = {}
    if isinstance(metadata.prompt_token_count, int):
        usage["input_tokens"] = metadata.prompt_token_count
    outputs = [metadata.candidates_token_count, metadata.thoughts_token_count]
    if any(isinstance(v, int) for v in outputs):
        usage["output_tokens"] = sum(v for v in outputs if isinstance(v, int))
    cached = getattr(metadata, "cached_content_token_count", None)
    if isinstance(cached, int) and cached > 0:  # part of input_tokens (priced apart)
        usage["cached_input_tokens"] = cached
    return usage


def _stop(reason: Any, called: bool) -> StopReason:
    name = str(getattr(reason, "value", reason) or "")
    if name == "MAX_TOKENS":
        return "max_tokens"
    if name in _FILTERED:
        return "content_filter"
    if name in ("STOP", ""):
        return "tool_calls" if called else "stop"
    return "other"


def _signature(value: str) -> bytes | None:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


__all__ = ["API_VERSION", "GeminiContent", "from_gemini_response", "to_gemini_contents"]
