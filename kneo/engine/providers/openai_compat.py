"""The OpenAI-compatible provider: chat completions through the ``openai`` SDK.

Works with any server speaking ``/v1/chat/completions`` (OpenAI, Azure-style gateways, vLLM,
Ollama, a local fake in tests) via ``model.base_url``. The SDK is imported lazily inside
:meth:`OpenAICompatibleProvider.complete`, so importing :mod:`kneo.engine` stays cheap.

Reliability: the SDK's own retries are off; this module retries timeouts, connection errors,
429 and 5xx up to ``KNEO_SERV_PROVIDER_RETRIES`` times with exponential backoff from
``KNEO_SERV_PROVIDER_RETRY_BACKOFF_SECONDS``, each attempt bounded by
``KNEO_SERV_PROVIDER_TIMEOUT_SECONDS``. Other 4xx fail at once.

Secrets: the key comes from the variable named by ``model.api_key_env`` (a project secret name
or an environment variable name) or else the project secret for the provider. Errors name the
variable, never a value; SDK errors are re-raised ``from None`` with a message built here and
scrubbed of the key, because upstream error bodies may echo credentials.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from kneo.documents import DocumentError, parse_json
from kneo.engine.providers.base import ChatMessage, ModelReply, ToolCall
from kneo.errors import ProviderError
from kneo.redaction import redact_text
from kneo.settings import Settings
from kneo.spec.models import ModelSpec
from kneo.tools import ToolDefinition

if TYPE_CHECKING:
    from openai import OpenAI

#: Longest upstream error text carried into a ProviderError message.
_MAX_ERROR_CHARS = 300


class OpenAICompatibleProvider:
    """Chat completions against ``model.base_url`` (default: the SDK's OpenAI endpoint)."""

    name = "openai"

    def __init__(
        self,
        settings: Settings,
        *,
        secrets: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._settings = settings
        self._secrets = dict(secrets if secrets is not None else {"openai": "OPENAI_API_KEY"})
        self._sleep = sleep

    # ------------------------------------------------------------------ secrets

    def secret_env(self, model: ModelSpec) -> str:
        """The name of the environment variable that must hold the key for ``model``."""
        if model.api_key_env:
            return self._secrets.get(model.api_key_env, model.api_key_env)
        for name in (model.provider, self.name):
            if name in self._secrets:
                return self._secrets[name]
        return "OPENAI_API_KEY"

    def _api_key(self, model: ModelSpec) -> str:
        env_var = self.secret_env(model)
        value = self._settings.secret(env_var)
        if value is None:
            raise ProviderError(
                f"Provider '{model.provider}' needs an API key in the environment variable "
                f"{env_var}, which is not set. Set it, or name another variable with "
                "model.api_key_env or the project config's secrets.providers.",
                code="provider_secret_missing",
                variable=env_var,
                provider=model.provider,
            )
        return value

    # ------------------------------------------------------------------ calls

    def complete(
        self,
        *,
        model: ModelSpec,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolDefinition],
    ) -> ModelReply:
        import openai

        key = self._api_key(model)
        request: dict[str, Any] = {
            "model": model.name,
            "messages": [to_openai_message(m) for m in messages],
        }
        if tools:
            request["tools"] = [t.openai_schema() for t in tools]
        if model.temperature is not None:
            request["temperature"] = model.temperature
        if model.max_tokens is not None:
            request["max_tokens"] = model.max_tokens

        attempts = 1 + max(0, self._settings.provider_retries)
        backoff = self._settings.provider_retry_backoff_seconds
        with self._client(model, key) as client:
            for attempt in range(attempts):
                try:
                    response = client.chat.completions.create(**request)
                except openai.APIError as exc:
                    error, retryable = self._translate(exc, model, key)
                    if not retryable or attempt + 1 >= attempts:
                        if attempt:
                            error.details["attempts"] = attempt + 1
                        raise error from None
                    self._sleep(backoff * (2**attempt))
                    continue
                return from_openai_response(response, model)
        raise AssertionError("unreachable: the retry loop returns or raises")

    def _client(self, model: ModelSpec, key: str) -> OpenAI:
        from openai import OpenAI

        kwargs: dict[str, Any] = {"api_key": key, "max_retries": 0}
        if model.base_url:
            kwargs["base_url"] = model.base_url
        if self._settings.provider_timeout_seconds is not None:
            kwargs["timeout"] = self._settings.provider_timeout_seconds
        return OpenAI(**kwargs)

    def _translate(self, exc: Exception, model: ModelSpec, key: str) -> tuple[ProviderError, bool]:
        """A ProviderError for an SDK error, and whether another attempt may succeed."""
        import openai

        where = f"Provider '{model.provider}' (model '{model.name}')"
        if isinstance(exc, openai.APITimeoutError):
            timeout = self._settings.provider_timeout_seconds
            limit = f" after {timeout:g}s" if timeout is not None else ""
            return ProviderError(f"{where} timed out{limit}.", code="provider_timeout"), True
        if isinstance(exc, openai.APIConnectionError):
            return (
                ProviderError(
                    f"{where} is unreachable at {model.base_url or 'the default endpoint'}.",
                    code="provider_unreachable",
                ),
                True,
            )
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            detail = _scrub(_error_text(exc), key)
            message = f"{where} returned HTTP {status}" + (f": {detail}" if detail else ".")
            code = {
                401: "provider_auth_failed",
                403: "provider_auth_failed",
                429: "provider_rate_limited",
            }.get(status, "provider_error")
            return ProviderError(message, code=code, status=status), status == 429 or status >= 500
        return ProviderError(f"{where} failed: {_scrub(str(exc), key)}"), False


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
        raise ProviderError(
            f"Provider '{model.provider}' (model '{model.name}') returned no choices.",
            code="provider_bad_response",
        )
    message = choices[0].message
    calls: list[ToolCall] = []
    for raw in getattr(message, "tool_calls", None) or []:
        function = getattr(raw, "function", None)
        if function is None:  # a non-function tool call type this engine does not run
            continue
        calls.append(
            ToolCall(
                id=raw.id,
                name=function.name,
                arguments=_parse_arguments(function.arguments, function.name, model),
            )
        )
    usage: dict[str, int] = {}
    if getattr(response, "usage", None) is not None:
        for field in ("prompt_tokens", "completion_tokens", "total_tokens"):
            value = getattr(response.usage, field, None)
            if isinstance(value, int):
                usage[field] = value
    return ModelReply(text=message.content, tool_calls=tuple(calls), usage=usage)


def _parse_arguments(raw: str | None, tool: str, model: ModelSpec) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        value = parse_json(raw, source="tool arguments")
    except DocumentError:
        value = None
    if not isinstance(value, dict):
        raise ProviderError(
            f"Provider '{model.provider}' (model '{model.name}') sent arguments for tool "
            f"'{tool}' that are not a JSON object.",
            code="provider_bad_response",
            tool=tool,
        )
    return value


def _error_text(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
    return str(getattr(exc, "message", "") or "")


def _scrub(text: str, key: str) -> str:
    """One line, bounded, without the key (exact value or its long fragments) or secrets."""
    text = " ".join(text.split())
    text = redact_text(text, extra_secrets=(key,))
    if len(key) >= 16:  # upstreams often echo a masked key such as "sk-abcd****wxyz"
        for size in (len(key) // 2, 8):
            for start in range(0, len(key) - size + 1):
                fragment = key[start : start + size]
                if fragment in text:
                    text = text.replace(fragment, "[REDACTED]")
    return text[:_MAX_ERROR_CHARS]
