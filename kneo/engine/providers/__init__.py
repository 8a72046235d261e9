"""Model providers behind one small interface (:class:`Provider`).

``dummy`` is in-process and deterministic (scripted from the spec) so every example runs
offline; ``openai`` (alias ``openai-compatible``) talks chat completions through the ``openai``
SDK, which is imported only when a call is made. Must not import the store, FastAPI or Typer.
"""

from kneo.engine.providers.base import ChatMessage, ModelReply, Provider, Role, ToolCall
from kneo.engine.providers.dummy import DummyProvider, read_call_log
from kneo.engine.providers.openai_compat import OpenAICompatibleProvider
from kneo.engine.providers.registry import (
    DEFAULT_PROVIDER_SECRETS,
    ProviderRegistry,
    create_provider_registry,
    missing_provider_secrets,
)

__all__ = [
    "DEFAULT_PROVIDER_SECRETS",
    "ChatMessage",
    "DummyProvider",
    "ModelReply",
    "OpenAICompatibleProvider",
    "Provider",
    "ProviderRegistry",
    "Role",
    "ToolCall",
    "create_provider_registry",
    "missing_provider_secrets",
    "read_call_log",
]
