"""The OpenAI-compatible client a bridged agent's model calls go through: the spec's model
(``base_url``, its declared key) resolved by the run's grant, its HTTP client the kernel's
(every request, each redirect hop, asked of the grant)."""

from __future__ import annotations

from typing import Any

from kneo.destinations import DEFAULT_ENDPOINTS
from kneo.errors import ErrorCode, ProviderError
from kneo.kernel import async_http_client, secret
from kneo.policy.access import HostAccess
from kneo.settings import Settings
from kneo.spec.models import ModelSpec

__all__ = ["OPENAI_COMPATIBLE", "async_openai_client"]

#: Providers a bridge may name: those speaking OpenAI's chat completions.
OPENAI_COMPATIBLE = frozenset({"openai", "openai-compatible", "llama-cpp", "vllm", "ollama"})


def async_openai_client(
    model: ModelSpec, access: HostAccess, settings: Settings, *, path: str
) -> Any:
    """An ``openai.AsyncOpenAI`` for ``model``, once the grant allows its destination and
    key (``E_DESTINATION_NOT_ALLOWED``, ``E_SECRET_UNDECLARED``, ``E_SECRET_NOT_BOUND``)."""
    from openai import AsyncOpenAI

    if model.provider not in OPENAI_COMPATIBLE:
        raise ProviderError(
            f"{path}.provider: a bridged agent calls an OpenAI-compatible server "
            f"({', '.join(sorted(OPENAI_COMPATIBLE))}), not {model.provider!r}",
            code=ErrorCode.provider_config_invalid,
        )
    resolved, reach = access.model_call(model, path=path)
    base_url = resolved.base_url or DEFAULT_ENDPOINTS.get(resolved.provider)
    if not base_url:
        raise ProviderError(
            f"{path}.base_url: provider {model.provider!r} needs model.base_url",
            code=ErrorCode.provider_config_invalid,
        )
    key = (
        secret(reach, settings.environ, resolved.api_key_env, path=f"{path}.api_key_env")
        if resolved.api_key_env
        else None
    )
    timeout = model.timeout_seconds or settings.provider_timeout_seconds
    http = async_http_client(
        reach, path=f"model {model.name!r}", timeout=timeout, follow_redirects=True
    )
    return AsyncOpenAI(api_key=key or "no-key", base_url=base_url, max_retries=0, http_client=http)
