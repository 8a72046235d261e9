"""The OpenAI-compatible provider against a real local HTTP server (see conftest)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from kneo.engine.providers import (
    ChatMessage,
    OpenAICompatibleProvider,
    ToolCall,
    create_provider_registry,
)
from kneo.errors import ProviderError
from kneo.settings import Settings
from kneo.spec.models import ModelSpec
from kneo.tools import ToolDefinition

KEY = "sk-test-PLANTEDsecretVALUE0123456789abcdef"

LOOKUP = ToolDefinition(
    name="lookup_user",
    description="Return the email for a user id.",
    parameters={
        "type": "object",
        "properties": {"user_id": {"type": "string"}},
        "required": ["user_id"],
    },
)


def _provider(
    env: dict[str, str] | None = None, sleeps: list[float] | None = None
) -> OpenAICompatibleProvider:
    environ = {"OPENAI_API_KEY": KEY, **(env or {})}
    record: Callable[[float], None] = sleeps.append if sleeps is not None else lambda _s: None
    return OpenAICompatibleProvider(Settings.from_env(environ), sleep=record)


def _model(base_url: str, name: str, **extra: Any) -> ModelSpec:
    return ModelSpec(provider="openai", name=name, base_url=base_url, **extra)


USER = [ChatMessage("system", "be brief"), ChatMessage("user", "hi")]


def test_plain_reply_sends_model_messages_and_key(fake_openai: Any) -> None:
    """A text reply comes back with usage; the request carries model, messages and the key."""
    reply = _provider().complete(
        model=_model(fake_openai.base_url, "plain", temperature=0.2, max_tokens=50),
        messages=USER,
        tools=[],
    )
    assert reply.text == "hello from plain"
    assert reply.tool_calls == ()
    assert reply.usage == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    sent = fake_openai.requests[0]
    assert sent["model"] == "plain"
    assert sent["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
    ]
    assert sent["temperature"] == 0.2 and sent["max_tokens"] == 50
    assert "tools" not in sent
    assert fake_openai.headers[0]["authorization"] == f"Bearer {KEY}"


def test_tool_call_round_trip(fake_openai: Any) -> None:
    """Tools go out as JSON Schema functions; tool calls come back parsed; results go back."""
    provider = _provider()
    model = _model(fake_openai.base_url, "tools")
    first = provider.complete(model=model, messages=USER, tools=[LOOKUP])
    assert first.text is None
    assert first.tool_calls == (ToolCall("call_abc", "lookup_user", {"user_id": "u-002"}),)
    assert fake_openai.requests[0]["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "lookup_user",
                "description": "Return the email for a user id.",
                "parameters": dict(LOOKUP.parameters),
            },
        }
    ]
    conversation = [
        *USER,
        first.to_message(),
        ChatMessage("tool", "bob@example.com", tool_call_id="call_abc"),
    ]
    second = provider.complete(model=model, messages=conversation, tools=[LOOKUP])
    assert second.text == "the answer is bob@example.com"
    sent = fake_openai.requests[1]["messages"]
    assert sent[2] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_abc",
                "type": "function",
                "function": {"name": "lookup_user", "arguments": '{"user_id": "u-002"}'},
            }
        ],
    }
    assert sent[3] == {"role": "tool", "content": "bob@example.com", "tool_call_id": "call_abc"}


@pytest.mark.parametrize("model_name", ["flaky-500", "flaky-429"])
def test_retries_transient_errors_with_exponential_backoff(
    fake_openai: Any, model_name: str
) -> None:
    """500 and 429 are retried (server saw three requests) with backoff 0.1, 0.2."""
    sleeps: list[float] = []
    provider = _provider(
        {"KNEO_SERV_PROVIDER_RETRIES": "2", "KNEO_SERV_PROVIDER_RETRY_BACKOFF_SECONDS": "0.1"},
        sleeps,
    )
    reply = provider.complete(
        model=_model(fake_openai.base_url, model_name), messages=USER, tools=[]
    )
    assert reply.text == f"hello from {model_name}"
    assert fake_openai.hits[model_name] == 3
    assert sleeps == pytest.approx([0.1, 0.2])


def test_retries_exhausted_is_a_provider_error(fake_openai: Any) -> None:
    """With one retry, two 500s exhaust the budget: ProviderError with status and attempts."""
    provider = _provider({"KNEO_SERV_PROVIDER_RETRIES": "1"})
    with pytest.raises(ProviderError) as info:
        provider.complete(model=_model(fake_openai.base_url, "flaky-500"), messages=USER, tools=[])
    assert fake_openai.hits["flaky-500"] == 2
    assert info.value.details == {"status": 500, "attempts": 2}
    assert "HTTP 500" in info.value.message and "try again" in info.value.message


def test_client_errors_fail_fast(fake_openai: Any) -> None:
    """A 400 is not retried, however many retries are configured."""
    provider = _provider({"KNEO_SERV_PROVIDER_RETRIES": "3"})
    with pytest.raises(ProviderError) as info:
        provider.complete(
            model=_model(fake_openai.base_url, "bad-request"), messages=USER, tools=[]
        )
    assert fake_openai.hits["bad-request"] == 1
    assert info.value.code == "provider_error"
    assert "unsupported parameter" in info.value.message


def test_timeout_is_a_provider_error(fake_openai: Any) -> None:
    """A reply slower than KNEO_SERV_PROVIDER_TIMEOUT_SECONDS raises provider_timeout: the
    call gives up long before the fake's 5 s reply (the margin absorbs a loaded machine)."""
    provider = _provider({"KNEO_SERV_PROVIDER_TIMEOUT_SECONDS": "0.2"})
    started = time.monotonic()
    with pytest.raises(ProviderError) as info:
        provider.complete(model=_model(fake_openai.base_url, "slow"), messages=USER, tools=[])
    assert time.monotonic() - started < 3.0
    assert info.value.code == "provider_timeout"
    assert "0.2s" in info.value.message


def test_unreachable_server_is_a_provider_error() -> None:
    """A closed port is a ProviderError naming the base URL, not an SDK traceback."""
    with pytest.raises(ProviderError) as info:
        _provider().complete(
            model=_model("http://127.0.0.1:9/v1", "plain"), messages=USER, tools=[]
        )
    assert info.value.code == "provider_unreachable"
    assert "127.0.0.1:9" in info.value.message


def test_arguments_that_are_not_json_are_a_provider_error(fake_openai: Any) -> None:
    with pytest.raises(ProviderError) as info:
        _provider().complete(
            model=_model(fake_openai.base_url, "bad-args"), messages=USER, tools=[]
        )
    assert info.value.code == "provider_bad_response"


def test_missing_key_names_the_variable(fake_openai: Any) -> None:
    """No key: provider_secret_missing naming the variable; no request is sent."""
    provider = OpenAICompatibleProvider(Settings.from_env({}), secrets={"openai": "MY_LLM_KEY"})
    with pytest.raises(ProviderError) as info:
        provider.complete(model=_model(fake_openai.base_url, "plain"), messages=USER, tools=[])
    assert info.value.code == "provider_secret_missing"
    assert "MY_LLM_KEY" in info.value.message
    assert info.value.details["variable"] == "MY_LLM_KEY"
    assert fake_openai.requests == []


def test_api_key_env_names_a_project_secret_or_a_variable(fake_openai: Any) -> None:
    """``model.api_key_env`` resolves through project secrets first, else is a variable name."""
    settings = Settings.from_env({"TEAM_KEY": "sk-team-000000000000", "RAW_KEY": "sk-raw-0000000"})
    provider = OpenAICompatibleProvider(settings, secrets={"team": "TEAM_KEY"})
    provider.complete(
        model=_model(fake_openai.base_url, "plain", api_key_env="team"), messages=USER, tools=[]
    )
    provider.complete(
        model=_model(fake_openai.base_url, "plain", api_key_env="RAW_KEY"), messages=USER, tools=[]
    )
    auth = [h["authorization"] for h in fake_openai.headers]
    assert auth == ["Bearer sk-team-000000000000", "Bearer sk-raw-0000000"]


def test_errors_never_contain_the_key(fake_openai: Any) -> None:
    """Plant a key, trigger every error path (one echoes the key back): the key never shows."""
    provider = _provider({"KNEO_SERV_PROVIDER_TIMEOUT_SECONDS": "0.2"})
    errors: list[ProviderError] = []
    for name in ("echo-key", "bad-request", "slow", "flaky-500", "bad-args"):
        with pytest.raises(ProviderError) as info:
            provider.complete(model=_model(fake_openai.base_url, name), messages=USER, tools=[])
        errors.append(info.value)
    assert errors[0].code == "provider_auth_failed"
    for error in errors:
        rendered = " ".join([str(error), repr(error), json.dumps(error.to_dict())])
        assert KEY not in rendered
        assert KEY[10:30] not in rendered
        # SDK errors are not chained: a logged traceback cannot leak the upstream body
        assert error.__cause__ is None
        assert error.__context__ is None or error.__suppress_context__


def test_registry_requires_secrets_when_asked() -> None:
    """KNEO_SERV_REQUIRE_PROVIDER_SECRETS fails registry creation, naming the variables."""
    settings = Settings.from_env({"KNEO_SERV_REQUIRE_PROVIDER_SECRETS": "true"})
    with pytest.raises(ProviderError) as info:
        create_provider_registry(settings, secrets={"openai": "ACME_OPENAI_KEY"})
    assert info.value.code == "provider_secret_missing"
    assert "ACME_OPENAI_KEY" in info.value.message
    ok = Settings.from_env({"KNEO_SERV_REQUIRE_PROVIDER_SECRETS": "true", "ACME_OPENAI_KEY": KEY})
    registry = create_provider_registry(ok, secrets={"openai": "ACME_OPENAI_KEY"})
    assert registry.get("openai-compatible") is registry.get("openai")
    # without the flag, a missing secret only matters when a call is made
    create_provider_registry(Settings.from_env({}))
