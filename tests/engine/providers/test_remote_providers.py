"""Every remote provider through its official SDK, against a local server speaking the
provider's wire format (``tests/fake_models``): replies, parallel tool calls and their results,
usage, stop reasons, 429 with Retry-After, 5xx, 400, 401, timeouts, unreachable servers,
and keys that never show in an error."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from kneo.engine.providers import ChatMessage, ToolCall, remote_provider
from kneo.errors import ProviderError
from kneo.settings import Settings
from kneo.spec.models import ModelSpec
from kneo.tools import ToolDefinition
from tests.fake_models.server import INPUT_PER_MESSAGE, OUTPUT_PER_REPLY, FakeModels, serve

KEY = "sk-test-PLANTEDsecretVALUE0123456789abcdef"
PROVIDERS = ["openai", "azure-openai", "anthropic", "google"]
VARIABLE = {
    "openai": "OPENAI_API_KEY",
    "azure-openai": "AZURE_OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "google": "GOOGLE_API_KEY",
}
LOOKUP = ToolDefinition(
    name="lookup_user",
    description="Return the email for a user id.",
    parameters={
        "type": "object",
        "properties": {"user_id": {"type": "string"}},
        "required": ["user_id"],
    },
)
USER = [ChatMessage("system", "be brief"), ChatMessage("user", "hi")]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeModels]:
    with serve() as server:
        yield server


def _base_url(provider: str, fake: FakeModels) -> str:
    return f"{fake.url}/v1" if provider == "openai" else fake.url


def _model(provider: str, fake: FakeModels, name: str, **extra: Any) -> ModelSpec:
    return ModelSpec(provider=provider, name=name, base_url=_base_url(provider, fake), **extra)


def _provider(provider: str, env: dict[str, str] | None = None, **kw: Any) -> Any:
    settings = Settings.from_env({VARIABLE[provider]: KEY, **(env or {})})
    return remote_provider(provider, settings, secrets={}, **kw)


def _unique(provider: str, what: str) -> str:
    """A model name of its own per test and provider (the server is shared by the module)."""
    return f"{what}-{provider}-{time.monotonic_ns()}"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_text_reply_with_usage_and_the_key_in_the_providers_header(
    fake: FakeModels, provider: str
) -> None:
    name = _unique(provider, "plain")
    fake.script(name, [{"text": "hello there"}])
    reply = _provider(provider).complete(
        model=_model(provider, fake, name, temperature=0.2, max_tokens=50),
        messages=USER,
        tools=[],
    )
    assert (reply.text, reply.tool_calls, reply.stop_reason) == ("hello there", (), "stop")
    # the fake counts 10 input tokens per message it was sent (the system one is a
    # separate field for Anthropic and Gemini), 7 output tokens per reply
    sent_messages = 2 if provider in ("openai", "azure-openai") else 1
    assert reply.usage == {
        "input_tokens": INPUT_PER_MESSAGE * sent_messages,
        "output_tokens": OUTPUT_PER_REPLY,
    }
    [seen] = fake.requests(name)
    assert seen.key == KEY and seen.system == "be brief"
    assert seen.texts == [("user", "hi")]
    if provider == "azure-openai":
        assert seen.dialect == "azure" and "api-version=2024-10-21" in seen.query
        assert seen.body["max_completion_tokens"] == 50
    if provider == "openai":
        assert seen.body["max_tokens"] == 50 and seen.body["temperature"] == 0.2
    if provider == "anthropic":
        assert seen.body["max_tokens"] == 50 and seen.headers["anthropic-version"]
    if provider == "google":
        assert seen.body["generationConfig"]["maxOutputTokens"] == 50


@pytest.mark.parametrize("provider", PROVIDERS)
def test_parallel_tool_calls_and_their_results_round_trip(fake: FakeModels, provider: str) -> None:
    """Two calls in one reply come back in order with ids; the two results go back in one
    request, each under its call's id (Gemini: its function name, as it sends no ids)."""
    name = _unique(provider, "tools")
    fake.script(
        name,
        [
            {
                "tool_calls": [
                    {"name": "lookup_user", "arguments": {"user_id": "u-1"}},
                    {"name": "lookup_user", "arguments": {"user_id": "u-2"}},
                ]
            },
            {"text": "last was {last_tool_result}"},
        ],
    )
    llm = _provider(provider)
    model = _model(provider, fake, name)
    first = llm.complete(model=model, messages=USER, tools=[LOOKUP])
    assert first.stop_reason == "tool_calls" and first.text is None
    assert [(c.name, c.arguments) for c in first.tool_calls] == [
        ("lookup_user", {"user_id": "u-1"}),
        ("lookup_user", {"user_id": "u-2"}),
    ]
    ids = [c.id for c in first.tool_calls]
    assert len(set(ids)) == 2 and all(ids)
    conversation = [
        *USER,
        first.to_message(),
        ChatMessage("tool", "ann@example.com", tool_call_id=ids[0], name="lookup_user"),
        ChatMessage("tool", "bob@example.com", tool_call_id=ids[1], name="lookup_user"),
    ]
    second = llm.complete(model=model, messages=conversation, tools=[LOOKUP])
    assert second.text == "last was bob@example.com"
    tools_request, results_request = fake.requests(name)
    assert tools_request.tools == ["lookup_user"]
    assert [(c[1], c[2]) for c in results_request.calls] == [
        ("lookup_user", {"user_id": "u-1"}),
        ("lookup_user", {"user_id": "u-2"}),
    ]
    contents = [r[2] for r in results_request.results]
    assert contents == ["ann@example.com", "bob@example.com"]
    if provider == "google":  # no ids on the wire: matched by name and order
        assert [r[0] for r in results_request.results] == [None, None]
        assert [r[1] for r in results_request.results] == ["lookup_user", "lookup_user"]
    else:
        assert [r[0] for r in results_request.results] == ids
        assert [c[0] for c in results_request.calls] == ids


def test_gemini_thought_signatures_go_back_with_their_calls(fake: FakeModels) -> None:
    """Gemini's ``thoughtSignature`` is kept with each call in the transcript (JSON, so it
    survives a checkpoint) and sent back; without it the API refuses the request."""
    name = _unique("google", "signed")
    fake.script(name, [{"tool_calls": [{"name": "lookup_user", "arguments": {}}]}, {"text": "ok"}])
    llm = _provider("google")
    model = _model("google", fake, name)
    first = llm.complete(model=model, messages=USER, tools=[LOOKUP])
    [call] = first.tool_calls
    stored = ChatMessage.from_dict(json.loads(json.dumps(first.to_message().to_dict())))
    result = ChatMessage("tool", "x", tool_call_id=call.id, name=call.name)
    assert llm.complete(model=model, messages=[*USER, stored, result], tools=[LOOKUP]).text == "ok"
    stripped = ChatMessage("assistant", None, (ToolCall(call.id, call.name, {}),))
    with pytest.raises(ProviderError) as info:
        llm.complete(model=model, messages=[*USER, stripped, result], tools=[LOOKUP])
    assert info.value.code == "provider_bad_request" and "thought_signature" in str(info.value)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_cut_off_reply_says_so(fake: FakeModels, provider: str) -> None:
    name = _unique(provider, "cut")
    fake.script(name, [{"text": "The answer is", "stop": "max_tokens"}])
    reply = _provider(provider).complete(
        model=_model(provider, fake, name, max_tokens=3), messages=USER, tools=[]
    )
    assert reply.stop_reason == "max_tokens" and reply.text == "The answer is"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_429_waits_at_least_its_retry_after_then_succeeds(fake: FakeModels, provider: str) -> None:
    name = _unique(provider, "limited")
    fake.fail(name, 429, "slow down", retry_after=0.4)
    fake.fail(name, 429, "slow down", retry_after=0.4)
    sleeps: list[float] = []
    env = {"KNEO_SERV_PROVIDER_RETRIES": "2", "KNEO_SERV_PROVIDER_RETRY_BACKOFF_SECONDS": "0.01"}
    llm = _provider(provider, env, sleep=sleeps.append, jitter=lambda: 0.5)
    reply = llm.complete(model=_model(provider, fake, name), messages=USER, tools=[])
    assert reply.text == f"hello from {name}"
    assert fake.hits(name) == 3 and sleeps == [0.4, 0.4]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_5xx_is_retried_with_exponential_backoff_and_jitter(
    fake: FakeModels, provider: str
) -> None:
    name = _unique(provider, "flaky")
    fake.fail(name, 500, "try again")
    fake.fail(name, 503, "try again")
    sleeps: list[float] = []
    env = {"KNEO_SERV_PROVIDER_RETRIES": "2", "KNEO_SERV_PROVIDER_RETRY_BACKOFF_SECONDS": "0.1"}
    jitters = iter([0.0, 1.0])  # the least, then the most the jitter may add
    llm = _provider(provider, env, sleep=sleeps.append, jitter=lambda: next(jitters))
    llm.complete(model=_model(provider, fake, name), messages=USER, tools=[])
    assert fake.hits(name) == 3
    assert sleeps == pytest.approx([0.05, 0.2])  # base 0.1 then 0.2: half fixed, half random


@pytest.mark.parametrize("provider", PROVIDERS)
def test_retries_exhausted_report_the_status_and_attempts(fake: FakeModels, provider: str) -> None:
    name = _unique(provider, "down")
    for _ in range(2):
        fake.fail(name, 503, "overloaded, try later")
    llm = _provider(provider, {"KNEO_SERV_PROVIDER_RETRIES": "1"}, sleep=lambda _s: None)
    with pytest.raises(ProviderError) as info:
        llm.complete(model=_model(provider, fake, name), messages=USER, tools=[])
    error = info.value
    assert error.code == "provider_unavailable" and fake.hits(name) == 2
    assert error.details["status"] == 503 and error.details["attempts"] == 2
    assert "overloaded, try later" in error.message


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(
    ("status", "code"), [(400, "provider_bad_request"), (401, "provider_auth_failed")]
)
def test_client_errors_are_not_retried_and_carry_the_providers_message(
    fake: FakeModels, provider: str, status: int, code: str
) -> None:
    name = _unique(provider, f"refused{status}")
    fake.fail(name, status, "unsupported parameter: frobnicate")
    llm = _provider(provider, {"KNEO_SERV_PROVIDER_RETRIES": "3"}, sleep=lambda _s: None)
    with pytest.raises(ProviderError) as info:
        llm.complete(model=_model(provider, fake, name), messages=USER, tools=[])
    assert fake.hits(name) == 1
    assert info.value.code == code and info.value.details["status"] == status
    assert "unsupported parameter: frobnicate" in info.value.message


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_retry_after_longer_than_the_timeout_is_not_waited_out(
    fake: FakeModels, provider: str
) -> None:
    name = _unique(provider, "later")
    fake.fail(name, 429, "quota exhausted", retry_after=3600)
    sleeps: list[float] = []
    env = {"KNEO_SERV_PROVIDER_RETRIES": "3", "KNEO_SERV_PROVIDER_TIMEOUT_SECONDS": "30"}
    llm = _provider(provider, env, sleep=sleeps.append)
    with pytest.raises(ProviderError) as info:
        llm.complete(model=_model(provider, fake, name), messages=USER, tools=[])
    assert info.value.code == "provider_rate_limited" and sleeps == []
    assert info.value.details["retry_after_seconds"] == 3600


@pytest.mark.parametrize("provider", PROVIDERS)
def test_timeout_and_unreachable_are_provider_errors(fake: FakeModels, provider: str) -> None:
    llm = _provider(provider, {"KNEO_SERV_PROVIDER_TIMEOUT_SECONDS": "0.3"})
    # the SDK is imported at the first call (1-5 s on a loaded machine): not what is timed
    llm.complete(model=_model(provider, fake, _unique(provider, "warm")), messages=USER, tools=[])
    started = time.monotonic()
    with pytest.raises(ProviderError) as info:
        llm.complete(model=_model(provider, fake, "slow"), messages=USER, tools=[])
    assert time.monotonic() - started < 4.0
    assert info.value.code == "provider_timeout" and "0.3s" in info.value.message
    closed = ModelSpec(provider=provider, name="plain", base_url="http://127.0.0.1:9")
    with pytest.raises(ProviderError) as info:
        llm.complete(model=closed, messages=USER, tools=[])
    assert info.value.code == "provider_unreachable" and "127.0.0.1:9" in info.value.message


@pytest.mark.parametrize("provider", PROVIDERS)
def test_errors_never_contain_the_key(fake: FakeModels, provider: str) -> None:
    """Every error path, one of them a 401 echoing the key back: the key never shows, and
    the SDK's exception is not chained (a logged traceback cannot leak its body)."""
    llm = _provider(provider, {"KNEO_SERV_PROVIDER_TIMEOUT_SECONDS": "0.3"})
    bad = _unique(provider, "bad")
    fake.fail(bad, 400, f"bad request for key {KEY}")
    errors = []
    for name in ("echo-key", bad, "slow", "bad-args"):
        with pytest.raises(ProviderError) as info:
            llm.complete(model=_model(provider, fake, name), messages=USER, tools=[LOOKUP])
        errors.append(info.value)
    assert [e.code for e in errors] == [
        "provider_auth_failed",
        "provider_bad_request",
        "provider_timeout",
        "provider_bad_response",
    ]
    for error in errors:
        rendered = " ".join([str(error), repr(error), json.dumps(error.to_dict())])
        assert KEY not in rendered and KEY[10:30] not in rendered
        assert error.__cause__ is None
        assert error.__context__ is None or error.__suppress_context__


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_missing_key_names_the_variable_and_sends_nothing(
    fake: FakeModels, provider: str
) -> None:
    llm = remote_provider(provider, Settings.from_env({}), secrets={provider: "TEAM_LLM_KEY"})
    name = _unique(provider, "nokey")
    with pytest.raises(ProviderError) as info:
        llm.complete(model=_model(provider, fake, name), messages=USER, tools=[])
    assert info.value.code == "provider_secret_missing"
    assert info.value.details["variable"] == "TEAM_LLM_KEY" and fake.hits(name) == 0


def test_azure_needs_its_resource_endpoint() -> None:
    llm = _provider("azure-openai")
    with pytest.raises(ProviderError) as info:
        llm.complete(model=ModelSpec(provider="azure-openai", name="gpt"), messages=USER, tools=[])
    assert info.value.code == "provider_config_invalid"
