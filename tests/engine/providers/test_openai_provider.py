"""What is particular to the ``openai`` provider (the rest is in test_remote_providers.py):
where its key comes from, how the registry names it, and that the SDK never picks its
endpoint or key from the environment."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from kneo.engine.providers import ChatMessage, create_provider_registry, remote_provider
from kneo.errors import ProviderError
from kneo.settings import Settings
from kneo.spec.models import ModelSpec
from tests.fake_models.server import FakeModels, serve

KEY = "sk-test-PLANTEDsecretVALUE0123456789abcdef"
USER = [ChatMessage("user", "hi")]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeModels]:
    with serve() as server:
        yield server


def _model(fake: FakeModels, name: str, **extra: str) -> ModelSpec:
    return ModelSpec(provider="openai", name=name, base_url=f"{fake.url}/v1", **extra)


def test_api_key_env_names_a_project_secret_or_a_variable(fake: FakeModels) -> None:
    """``model.api_key_env`` resolves through project secrets first, else is a variable name."""
    settings = Settings.from_env({"TEAM_KEY": "sk-team-000000000000", "RAW_KEY": "sk-raw-0000000"})
    provider = remote_provider("openai", settings, secrets={"team": "TEAM_KEY"})
    provider.complete(model=_model(fake, "k1", api_key_env="team"), messages=USER, tools=[])
    provider.complete(model=_model(fake, "k2", api_key_env="RAW_KEY"), messages=USER, tools=[])
    keys = [s.key for s in fake.seen if s.model in ("k1", "k2")]
    assert keys == ["sk-team-000000000000", "sk-raw-0000000"]


def test_the_sdk_never_reads_its_own_endpoint_or_key_variables(
    fake: FakeModels, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OPENAI_BASE_URL and OPENAI_API_KEY in the process environment change nothing: the
    endpoint and key are the model's, as the host's grant checked them."""
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-environment-000000")
    provider = remote_provider("openai", Settings.from_env({"TEAM_KEY": KEY}), secrets={})
    reply = provider.complete(
        model=_model(fake, "env", api_key_env="TEAM_KEY"), messages=USER, tools=[]
    )
    assert reply.text == "hello from env" and fake.requests("env")[0].key == KEY


def test_required_secrets_are_those_of_the_providers_a_spec_uses() -> None:
    """KNEO_SERV_REQUIRE_PROVIDER_SECRETS asks for the keys of the providers a spec's agents
    use, naming the variables, and for no other: a dummy spec runs without any key."""
    from kneo.engine.providers import require_spec_secrets
    from kneo.spec.loader import load_spec_data

    def spec(*models: dict[str, Any]) -> Any:
        agents = {f"a{i}": {"name": f"a{i}", "model": m} for i, m in enumerate(models)}
        return load_spec_data(
            {"version": "v1", "agent": agents.pop("a0"), "components": {"agents": agents}}
        )

    settings = Settings.from_env({"KNEO_SERV_REQUIRE_PROVIDER_SECRETS": "true"})
    registry = create_provider_registry(settings, secrets={"openai": "ACME_OPENAI_KEY"})
    dummy = {"provider": "dummy", "script": [{"text": "hi"}]}
    require_spec_secrets(settings, registry.get, spec(dummy))  # no provider needs a key
    with pytest.raises(ProviderError) as info:
        require_spec_secrets(
            settings, registry.get,
            spec(dummy, {"provider": "openai", "name": "m"}, {"provider": "anthropic", "name": "c"}),
        )  # fmt: skip
    assert info.value.code == "provider_secret_missing"
    assert info.value.details["variables"] == ["ACME_OPENAI_KEY", "ANTHROPIC_API_KEY"]
    assert "GOOGLE_API_KEY" not in info.value.message  # a provider the spec does not use
    named = spec({"provider": "openai", "name": "m", "api_key_env": "TEAM_KEY"})
    with pytest.raises(ProviderError, match="TEAM_KEY"):
        require_spec_secrets(settings, registry.get, named)
    ok = Settings.from_env({"KNEO_SERV_REQUIRE_PROVIDER_SECRETS": "true", "TEAM_KEY": KEY})
    require_spec_secrets(ok, create_provider_registry(ok).get, named)
    # without the flag, a missing secret only matters when a call is made
    require_spec_secrets(Settings.from_env({}), registry.get, named)
    registry = create_provider_registry(ok, secrets={"openai": "ACME_OPENAI_KEY"})
    assert registry.get("openai-compatible") is registry.get("openai")
    assert registry.get("gemini") is registry.get("google")
