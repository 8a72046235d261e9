"""Model providers behind one small interface (:class:`Provider`).

``dummy`` is in-process and deterministic (scripted from the spec) so every example runs
offline. The others are thin adapters over each provider's official SDK, wrapped once by
:class:`RemoteProvider` (key, endpoint, retries, errors): ``openai`` (aliases
``openai-compatible``, ``llama-cpp``) and ``azure-openai`` through ``openai``, ``anthropic`` through
``anthropic``, ``google`` through ``google-genai``. An SDK is imported only when a call is
made. Must not import the store, FastAPI or Typer.
"""

from kneo.engine.providers.base import (
    ChatMessage,
    ModelReply,
    Provider,
    Role,
    StopReason,
    ToolCall,
)
from kneo.engine.providers.dummy import DummyProvider, read_call_log
from kneo.engine.providers.registry import (
    DEFAULT_PROVIDER_SECRETS,
    REMOTE_PROVIDERS,
    ProviderRegistry,
    create_provider_registry,
    missing_provider_secrets,
    missing_spec_secrets,
    remote_provider,
    require_spec_secrets,
)
from kneo.engine.providers.remote import RemoteProvider

__all__ = [
    "DEFAULT_PROVIDER_SECRETS",
    "REMOTE_PROVIDERS",
    "ChatMessage",
    "DummyProvider",
    "ModelReply",
    "Provider",
    "ProviderRegistry",
    "RemoteProvider",
    "Role",
    "StopReason",
    "ToolCall",
    "create_provider_registry",
    "missing_provider_secrets",
    "missing_spec_secrets",
    "read_call_log",
    "remote_provider",
    "require_spec_secrets",
]
