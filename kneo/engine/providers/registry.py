"""Providers by name, and the factory that builds the default set from :class:`Settings`.

Project config maps provider names to the *names* of environment variables holding their
keys (``secrets.providers``, default ``{"openai": "OPENAI_API_KEY"}``); values are looked up
through :meth:`Settings.secret` only when a call needs them, and are never logged.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from kneo.clock import jitter
from kneo.engine.providers.anthropic_messages import AnthropicMessages
from kneo.engine.providers.base import Provider
from kneo.engine.providers.dummy import DummyProvider
from kneo.engine.providers.google_genai import GeminiContent
from kneo.engine.providers.openai_compat import AzureChatCompletions, ChatCompletions
from kneo.engine.providers.remote import Adapter, RemoteProvider
from kneo.errors import ErrorCode, InvalidRequest, ProviderError
from kneo.settings import Settings
from kneo.spec.models import ModelSpec, Spec

#: Provider name -> environment variable holding its key, when project config says nothing.
DEFAULT_PROVIDER_SECRETS: Mapping[str, str] = {"openai": "OPENAI_API_KEY"}

#: The providers behind a network API: name -> (adapter, aliases, the variable holding the
#: key when neither the spec nor the project names one).
REMOTE_PROVIDERS: dict[str, tuple[Callable[[], Adapter[Any]], tuple[str, ...], str]] = {
    "openai": (ChatCompletions, ("openai-compatible", "llama-cpp"), "OPENAI_API_KEY"),
    "azure-openai": (AzureChatCompletions, (), "AZURE_OPENAI_API_KEY"),
    "anthropic": (AnthropicMessages, (), "ANTHROPIC_API_KEY"),
    "google": (GeminiContent, ("gemini",), "GOOGLE_API_KEY"),
}


def remote_provider(
    name: str,
    settings: Settings,
    *,
    secrets: Mapping[str, str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    jitter: Callable[[], float] = jitter,
) -> RemoteProvider:
    """The provider ``name`` of :data:`REMOTE_PROVIDERS` (``sleep`` and ``jitter``: the
    retry waits, injectable for tests)."""
    adapter, _, default_secret = REMOTE_PROVIDERS[name]
    return RemoteProvider(
        adapter(),
        settings,
        secrets=DEFAULT_PROVIDER_SECRETS if secrets is None else secrets,
        default_secret=default_secret,
        sleep=sleep,
        jitter=jitter,
    )


class ProviderRegistry:
    """Registered providers by name (and alias). Lookup of an unknown name is a user error."""

    def __init__(self) -> None:
        self._providers: dict[str, Provider] = {}
        self._primary: list[str] = []

    def register(self, provider: Provider, *, aliases: tuple[str, ...] = ()) -> None:
        if provider.name not in self._providers:
            self._primary.append(provider.name)
        self._providers[provider.name] = provider
        for alias in aliases:
            self._providers[alias] = provider

    def get(self, name: str) -> Provider:
        try:
            return self._providers[name]
        except KeyError:
            known = ", ".join(self.names()) or "none"
            raise InvalidRequest(
                f"Unknown model provider '{name}' (known: {known}).",
                code=ErrorCode.unknown_provider,
                provider=name,
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._providers

    def names(self) -> list[str]:
        """Every name a spec may use, aliases included, sorted."""
        return sorted(self._providers)


def missing_spec_secrets(
    settings: Settings, providers: Callable[[str], Any], models: Iterable[ModelSpec]
) -> dict[str, str]:
    """The key variables ``models`` need that the environment lacks: variable -> provider
    (a provider that runs in-process, ``dummy``, or names no key needs none)."""
    missing: dict[str, str] = {}
    for model in models:
        try:
            provider = providers(model.provider)
        except InvalidRequest:  # an unknown provider: the spec check's error, not a key's
            continue
        secret_env = getattr(provider, "secret_env", None)
        variable = secret_env(model) if secret_env is not None else None
        if variable and settings.secret(variable) is None:
            missing.setdefault(variable, model.provider)
    return missing


def require_spec_secrets(settings: Settings, providers: Callable[[str], Any], spec: Spec) -> None:
    """With ``KNEO_SERV_REQUIRE_PROVIDER_SECRETS`` on, ``provider_secret_missing`` before a run
    of ``spec`` starts when a provider one of its agents uses has no key: the providers it
    uses, and only those (a ``dummy`` spec runs without any key)."""
    if not settings.require_provider_secrets:
        return
    models = [agent.model for agent in spec.all_agents().values()]
    missing = missing_spec_secrets(settings, providers, models)
    if missing:
        names = ", ".join(f"{var} (provider '{p}')" for var, p in sorted(missing.items()))
        raise ProviderError(
            f"Provider secrets are required (KNEO_SERV_REQUIRE_PROVIDER_SECRETS) but the "
            f"spec's agents use providers whose variables are not set: {names}.",
            code=ErrorCode.provider_secret_missing,
            variables=sorted(missing),
        )


def missing_provider_secrets(
    settings: Settings, secrets: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Configured providers whose key variable is unset: provider name -> variable name."""
    mapping = DEFAULT_PROVIDER_SECRETS if secrets is None else secrets
    return {
        provider: env_var
        for provider, env_var in mapping.items()
        if settings.secret(env_var) is None
    }


def create_provider_registry(
    settings: Settings, *, secrets: Mapping[str, str] | None = None
) -> ProviderRegistry:
    """The default registry: ``dummy`` and every remote provider (``openai``, aliases
    ``openai-compatible`` and ``llama-cpp``; ``azure-openai``; ``anthropic``; ``google``, alias ``gemini``).
    An SDK that is an extra is imported only at a provider's first call.

    ``KNEO_SERV_REQUIRE_PROVIDER_SECRETS`` is checked per spec, for the providers it uses
    (:func:`require_spec_secrets`), not here: a ``dummy`` run needs no provider's key.
    """
    mapping = dict(DEFAULT_PROVIDER_SECRETS if secrets is None else secrets)
    registry = ProviderRegistry()
    registry.register(DummyProvider(call_log=settings.dummy_call_log))
    for name, (_, aliases, _) in REMOTE_PROVIDERS.items():
        registry.register(remote_provider(name, settings, secrets=mapping), aliases=aliases)
    return registry
