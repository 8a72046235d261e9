"""Opt-in: one real round trip per provider, against the provider's own API.

Runs only with ``KNEO_SERV_RUN_PROVIDER_INTEGRATION=true`` and the provider's key in its
usual variable (``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``, ``GOOGLE_API_KEY``; Azure:
``AZURE_OPENAI_API_KEY`` with ``AZURE_OPENAI_ENDPOINT`` and the deployment in
``KNEO_SERV_PROVIDER_TEST_MODEL_AZURE_OPENAI``); each provider without its key is skipped
with the reason. ``KNEO_SERV_PROVIDER_TEST_MODEL`` (OpenAI, default ``gpt-4o-mini``) and
``KNEO_SERV_PROVIDER_TEST_MODEL_<PROVIDER>`` choose the models. Everything else in the suite
runs offline against local servers speaking each wire format (test_remote_providers.py).

The round trip is the one that matters most: the model asks for two tool calls at once (it
is told to), both results go back under their ids, and it answers from them; usage comes
back with tokens in both directions.
"""

from __future__ import annotations

import os

import pytest

from kneo.engine.providers import ChatMessage, remote_provider
from kneo.settings import Settings
from kneo.spec.models import ModelSpec
from kneo.tools import ToolDefinition

ENABLED = os.environ.get("KNEO_SERV_RUN_PROVIDER_INTEGRATION", "").lower() in ("1", "true", "yes")
pytestmark = pytest.mark.skipif(
    not ENABLED, reason="opt-in: set KNEO_SERV_RUN_PROVIDER_INTEGRATION=true and a provider key"
)

#: provider -> (key variable, default model)
LIVE = {
    "openai": ("OPENAI_API_KEY", "gpt-4o-mini"),
    "anthropic": ("ANTHROPIC_API_KEY", "claude-haiku-4-5"),
    "google": ("GOOGLE_API_KEY", "gemini-2.5-flash"),
    "azure-openai": ("AZURE_OPENAI_API_KEY", ""),
}
WEATHER = ToolDefinition(
    name="get_temperature",
    description="The current temperature in a city, in degrees Celsius.",
    parameters={
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
)


def _model(provider: str) -> ModelSpec:
    variable, default = LIVE[provider]
    if not os.environ.get(variable):
        pytest.skip(f"{variable} is not set")
    suffix = provider.upper().replace("-", "_")
    name = os.environ.get(f"KNEO_SERV_PROVIDER_TEST_MODEL_{suffix}") or (
        os.environ.get("KNEO_SERV_PROVIDER_TEST_MODEL", default)
        if provider == "openai"
        else default
    )
    base_url = os.environ.get("AZURE_OPENAI_ENDPOINT") if provider == "azure-openai" else None
    if not name or (provider == "azure-openai" and not base_url):
        pytest.skip(f"{provider}: set its endpoint and KNEO_SERV_PROVIDER_TEST_MODEL_{suffix}")
    return ModelSpec(provider=provider, name=name, base_url=base_url, max_tokens=400)


@pytest.mark.parametrize("provider", list(LIVE))
def test_two_tool_calls_in_one_turn_and_an_answer_from_both(provider: str) -> None:
    model = _model(provider)
    settings = Settings.from_env(
        {
            **os.environ,
            "KNEO_SERV_PROVIDER_RETRIES": "2",
            "KNEO_SERV_PROVIDER_TIMEOUT_SECONDS": "60",
        }
    )
    llm = remote_provider(provider, settings, secrets={})
    conversation = [
        ChatMessage("system", "Use the tools. Call get_temperature for every city at once."),
        ChatMessage("user", "Which is warmer right now, Oslo or Lisbon?"),
    ]
    first = llm.complete(model=model, messages=conversation, tools=[WEATHER])
    assert first.stop_reason == "tool_calls", first
    cities = {str(c.arguments.get("city", "")).lower() for c in first.tool_calls}
    assert {"oslo", "lisbon"} <= cities, first.tool_calls
    assert first.usage.get("input_tokens", 0) > 0 and first.usage.get("output_tokens", 0) > 0
    answers = {"oslo": "-3", "lisbon": "19"}
    conversation += [first.to_message()] + [
        ChatMessage(
            "tool",
            answers.get(str(c.arguments.get("city", "")).lower(), "10"),
            tool_call_id=c.id,
            name=c.name,
        )
        for c in first.tool_calls
    ]
    final = llm.complete(model=model, messages=conversation, tools=[WEATHER])
    assert final.stop_reason == "stop" and "lisbon" in (final.text or "").lower(), final
