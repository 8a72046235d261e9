"""Providers behind a network API: one wrapper for everything that is not the wire format.

Each real provider is an :class:`Adapter`: a small mapping between Kneo's messages and one
official SDK's request and response (``openai``, ``anthropic``, ``google-genai``) plus the
translation of that SDK's exceptions into a :class:`Fault`. :class:`RemoteProvider` wraps an
adapter and does the rest once, the same for every provider:

* **Key and endpoint** come from the model as :meth:`HostAccess.model
  <kneo.policy.access.HostAccess.model>` resolved it: ``api_key_env`` names the variable,
  else the project's secret for the provider; ``base_url``, else the provider's default
  endpoint (:data:`kneo.destinations.DEFAULT_ENDPOINTS`), always passed to the SDK
  explicitly so that no SDK reads an endpoint or key of its own from the environment.
* **Retries**: timeouts, connection errors, 408, 429 and 5xx are retried up to
  ``KNEO_SERV_PROVIDER_RETRIES`` times, waiting ``KNEO_SERV_PROVIDER_RETRY_BACKOFF_SECONDS *
  2^attempt`` with equal jitter (half fixed, half random), and at least what the provider's
  ``Retry-After`` (or ``retry-after-ms``) asks. A ``Retry-After`` longer than
  the call's timeout (below; 60 s when it has none) is not waited out: the error is
  raised with ``retry_after_seconds``. Each attempt is bounded by the timeout: the model's
  ``timeout_seconds``, else ``KNEO_SERV_PROVIDER_TIMEOUT_SECONDS`` (120 s by default, 0 for
  none). The SDKs' own retries are off.
* **Errors** are :class:`~kneo.errors.ProviderError` with a stable code (``provider_timeout``,
  ``provider_unreachable``, ``provider_auth_failed`` 401/403, ``provider_rate_limited`` 429,
  ``provider_bad_request`` 400/404/413/422, ``provider_unavailable`` 5xx,
  ``provider_error`` otherwise) and the provider's own message, shortened to one line and
  scrubbed of the key; SDK exceptions are never chained, so a logged traceback cannot leak
  what they hold.
* **Where requests go**: every request, each redirect hop included, goes through the
  kernel's network door (:func:`kneo.kernel.http_client`), which asks the call's grant
  (``reach``: the environment's allow-list and the destinations the key is bound to) and
  sends nothing it refuses (``AccessDenied``, never retried). Without a grant (a caller's
  own in-process call) requests stay on the model's endpoint.
* **Clients** are kept per (key, endpoint, timeout, grant) so connections are reused across
  calls.

Usage, budgets and tracing are the agent loop's and the journal observer's: a reply carries
its usage and stop reason in Kneo's terms (:class:`~kneo.engine.providers.base.ModelReply`).
"""

from __future__ import annotations

import email.utils
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from kneo.clock import jitter
from kneo.destinations import DEFAULT_ENDPOINTS, KEYLESS_PROVIDERS, NO_KEY
from kneo.documents import DocumentError, parse_json
from kneo.engine.providers.base import ChatMessage, ModelReply
from kneo.errors import AccessDenied, ErrorCode, ProviderError
from kneo.kernel import NetworkGrant, Operator, Origins, SecretGrant, http_client, secret
from kneo.lrucache import LRUCache
from kneo.redaction import redact_text
from kneo.settings import Settings
from kneo.spec.models import ModelSpec, ToolChoiceName
from kneo.tools import ToolDefinition

if TYPE_CHECKING:
    import httpx2

#: Longest upstream error text carried into a ProviderError message.
_MAX_ERROR_CHARS = 300
#: The longest ``Retry-After`` waited out when a call has no timeout.
DEFAULT_MAX_RETRY_AFTER = 60.0
_STATUS_CODES = {
    400: ErrorCode.provider_bad_request,
    401: ErrorCode.provider_auth_failed,
    403: ErrorCode.provider_auth_failed,
    404: ErrorCode.provider_bad_request,
    413: ErrorCode.provider_bad_request,
    422: ErrorCode.provider_bad_request,
    429: ErrorCode.provider_rate_limited,
}


@dataclass(frozen=True)
class Fault:
    """An SDK exception in Kneo's terms: what failed, and what the provider said."""

    kind: Literal["timeout", "unreachable", "status", "bad_response"]
    status: int | None = None
    message: str = ""
    #: seconds the provider asked to wait (``Retry-After``, ``retry-after-ms``)
    retry_after: float | None = None

    @property
    def retryable(self) -> bool:
        status = self.status or 0
        if self.kind in ("timeout", "unreachable"):
            return True
        return self.kind == "status" and (status in (408, 429) or status >= 500)


SdkClient = TypeVar("SdkClient")


class Adapter(Protocol[SdkClient]):
    """One SDK's request and response, and its exceptions; nothing else (see the module)."""

    #: the provider's registry name
    name: str

    def client(
        self,
        *,
        key: str,
        base_url: str | None,
        timeout: float | None,
        model: ModelSpec,
        http: httpx2.Client,
    ) -> SdkClient:
        """The SDK's client (retries off, key and endpoint given explicitly) over ``http``,
        the kernel's HTTP client: the SDK sends through nothing else."""
        ...

    def call(
        self,
        client: SdkClient,
        *,
        model: ModelSpec,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolDefinition],
    ) -> ModelReply:
        """One request; raises the SDK's exceptions (or ``ProviderError`` for a reply that
        cannot be read)."""
        ...

    def fault(self, exc: BaseException) -> Fault | None:
        """``exc`` as a fault, ``None`` when it is not the SDK's (it propagates)."""
        ...


class RemoteProvider:
    """A :class:`~kneo.engine.providers.base.Provider` around an :class:`Adapter`."""

    def __init__(
        self,
        adapter: Adapter[Any],
        settings: Settings,
        *,
        secrets: Mapping[str, str] | None = None,
        default_secret: str,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = jitter,
    ) -> None:
        self.adapter = adapter
        self.name = adapter.name
        self._settings = settings
        self._secrets = dict(secrets or {})
        self._default_secret = default_secret
        self._sleep = sleep
        self._jitter = jitter
        self._clients: LRUCache[tuple[Any, ...], Any] = LRUCache(16)
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ secrets

    def secret_env(self, model: ModelSpec) -> str | None:
        """The name of the environment variable that must hold the key for ``model``;
        ``None`` for a server that may take no key (:data:`KEYLESS_PROVIDERS`) when nothing
        names one: no variable is read (never the default provider's key) and the call
        carries :data:`NO_KEY`."""
        if model.api_key_env:
            return self._secrets.get(model.api_key_env, model.api_key_env)
        if model.provider in self._secrets:
            return self._secrets[model.provider]
        if model.provider in KEYLESS_PROVIDERS:
            return None
        return self._secrets.get(self.name, self._default_secret)

    def _api_key(self, model: ModelSpec, reach: NetworkGrant | None) -> str:
        """The key, through the kernel's secret door: asking the run's grant of this call
        (:class:`~kneo.policy.access.Reach`: its own secret, no other), or, for a caller's
        own in-process call without one, the operator's provider variables and the one the
        caller's own model names."""
        env_var = self.secret_env(model)
        if env_var is None:
            return NO_KEY
        grant = reach if isinstance(reach, SecretGrant) else self._operator(model)
        value = secret(grant, self._settings.environ, env_var, path=f"model {model.name!r}")
        if value is None:
            raise ProviderError(
                f"Provider '{model.provider}' needs an API key in the environment variable "
                f"{env_var}, which is not set. Set it, or name another variable with "
                "model.api_key_env or the project config's secrets.providers.",
                code=ErrorCode.provider_secret_missing,
                variable=env_var,
                provider=model.provider,
            )
        return value

    def _operator(self, model: ModelSpec) -> Operator:
        named = [model.api_key_env] if model.api_key_env else []
        return Operator.of(variables=[*self._secrets.values(), self._default_secret, *named])

    # ------------------------------------------------------------------ calls

    def complete(
        self,
        *,
        model: ModelSpec,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolDefinition],
        reach: NetworkGrant | None = None,
    ) -> ModelReply:
        key = self._api_key(model, reach)
        client = self._client(model, key, reach)
        attempts = 1 + max(0, self._settings.provider_retries)
        for attempt in range(attempts):
            try:
                return self.adapter.call(client, model=model, messages=messages, tools=tools)
            except (ProviderError, AccessDenied):
                raise  # a refused hop: nothing was sent there, and it would be refused again
            except Exception as exc:
                refusal = refusal_behind(exc)  # an SDK that wraps every error of its client
                if refusal is not None:
                    raise refusal from None
                fault = self.adapter.fault(exc)
                if fault is None:
                    raise
            error = self._error(fault, model, key)
            delay = self._delay(fault, attempt, model)
            if attempt:
                error.details["attempts"] = attempt + 1
            if not fault.retryable or attempt + 1 >= attempts or delay is None:
                raise error from None
            self._sleep(delay)
        raise AssertionError("unreachable: the retry loop returns or raises")

    def complete_stream(
        self,
        *,
        model: ModelSpec,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolDefinition],
        reach: NetworkGrant | None = None,
        on_text: Callable[[str], None],
    ) -> ModelReply:
        """:meth:`complete`, its text handed to ``on_text`` as the server streams it, where
        the adapter streams; else whole. A stream is not retried once text was handed on
        (a failure before that is retried as :meth:`complete` retries)."""
        streaming = getattr(self.adapter, "call_stream", None)
        if streaming is None:
            reply = self.complete(model=model, messages=messages, tools=tools, reach=reach)
            if reply.text:
                on_text(reply.text)
            return reply
        key = self._api_key(model, reach)
        client = self._client(model, key, reach)
        sent = False

        def forward(text: str) -> None:
            nonlocal sent
            sent = True
            on_text(text)

        try:
            streamed: ModelReply = streaming(
                client, model=model, messages=messages, tools=tools, on_text=forward
            )
            return streamed
        except (ProviderError, AccessDenied):
            raise
        except Exception as exc:
            refusal = refusal_behind(exc)
            if refusal is not None:
                raise refusal from None
            fault = self.adapter.fault(exc)
            if fault is None:
                raise
            if sent or not fault.retryable:
                raise self._error(fault, model, key) from None
        return self.complete(model=model, messages=messages, tools=tools, reach=reach)

    def _client(self, model: ModelSpec, key: str, reach: NetworkGrant | None) -> Any:
        base_url = model.base_url or DEFAULT_ENDPOINTS.get(model.provider)
        timeout = self.timeout(model)
        grant = reach if reach is not None else Origins.of(base_url or "")
        cache_key = (key, base_url, timeout, model.api_version, grant)
        with self._lock:
            client = self._clients.get(cache_key)
            if client is None:
                # the SDKs follow redirects: the kernel's client asks the grant at each hop
                http = http_client(
                    grant, path=f"model {model.name!r}", timeout=timeout, follow_redirects=True
                )
                client = self.adapter.client(
                    key=key, base_url=base_url, timeout=timeout, model=model, http=http
                )
                self._clients.put(cache_key, client)
            return client

    def timeout(self, model: ModelSpec) -> float | None:
        """Seconds one attempt of a call to ``model`` may take: its ``timeout_seconds``, else
        ``KNEO_SERV_PROVIDER_TIMEOUT_SECONDS`` (120 s by default; ``None`` when set to 0)."""
        return model.timeout_seconds or self._settings.provider_timeout_seconds

    def _delay(self, fault: Fault, attempt: int, model: ModelSpec) -> float | None:
        """Seconds before the next attempt; ``None`` when the provider asks for a wait
        longer than Kneo waits out."""
        base = float(self._settings.provider_retry_backoff_seconds) * (2**attempt)
        delay: float = base / 2 + self._jitter() * base / 2
        if fault.retry_after is None:
            return delay
        limit = float(self.timeout(model) or DEFAULT_MAX_RETRY_AFTER)
        if fault.retry_after > limit:
            return None
        return max(delay, fault.retry_after)

    def _error(self, fault: Fault, model: ModelSpec, key: str) -> ProviderError:
        where = f"Provider '{model.provider}' (model '{model.name}')"
        details: dict[str, Any] = {"provider": model.provider, "model": model.name}
        if fault.kind == "timeout":
            timeout = self.timeout(model)
            limit = f" after {timeout:g}s" if timeout is not None else ""
            if timeout is not None:
                details["timeout_seconds"] = timeout
            return ProviderError(
                f"{where} timed out{limit} (model.timeout_seconds, or "
                "KNEO_SERV_PROVIDER_TIMEOUT_SECONDS, bounds each attempt).",
                code=ErrorCode.provider_timeout,
                **details,
            )
        if fault.kind == "unreachable":
            target = model.base_url or DEFAULT_ENDPOINTS.get(model.provider) or "its endpoint"
            return ProviderError(
                f"{where} is unreachable at {target}.",
                code=ErrorCode.provider_unreachable,
                **details,
            )
        if fault.kind == "bad_response":
            return ProviderError(
                f"{where} sent {fault.message or 'a reply Kneo cannot read'}.",
                code=ErrorCode.provider_bad_response,
                **details,
            )
        status = fault.status or 0
        detail = scrub(fault.message, key)
        message = f"{where} returned HTTP {status}" + (f": {detail}" if detail else ".")
        code = _STATUS_CODES.get(status, ErrorCode.provider_unavailable if status >= 500 else None)
        if fault.retry_after is not None:
            details["retry_after_seconds"] = fault.retry_after
        return ProviderError(
            message, code=code or ErrorCode.provider_error, status=status, **details
        )


# ---------------------------------------------------------------------- helpers for adapters


def refusal_behind(exc: BaseException) -> AccessDenied | None:
    """The kernel's refusal of a request that ``exc`` wraps (its cause or context), if any:
    an SDK may report it as a connection error."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None or isinstance(seen, AccessDenied):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def retry_after(headers: Any) -> float | None:
    """Seconds a response's ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)
    asks to wait, ``None`` without one."""
    if headers is None:
        return None
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def sdk_fault(sdk: Any, exc: BaseException) -> Fault | None:
    """The fault of an exception raised by ``sdk``, the ``openai`` or ``anthropic`` module:
    both SDKs are generated alike and share the exception hierarchy used here."""
    if isinstance(exc, sdk.APITimeoutError):
        return Fault("timeout")
    if isinstance(exc, sdk.APIConnectionError):
        return Fault("unreachable")
    if isinstance(exc, sdk.APIStatusError):
        return Fault(
            "status",
            exc.status_code,
            error_text(exc.body, str(exc.message or "")),
            retry_after(exc.response.headers),
        )
    return transport_fault(exc)


def transport_fault(exc: BaseException) -> Fault | None:
    """A timeout or connection failure of ``httpx``/``httpx2`` (the SDKs' HTTP clients),
    told apart by class name so either library's exceptions are recognised."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "TimeoutException" in names:
        return Fault("timeout")
    if names & {"NetworkError", "TransportError", "ConnectError", "RemoteProtocolError"}:
        return Fault("unreachable")
    return None


def error_text(body: Any, fallback: str = "") -> str:
    """The provider's message in an error body (``{"error": {"message": ...}}`` and the
    like), else ``fallback``."""
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
        if isinstance(body.get("message"), str):
            return str(body["message"])
    return fallback


def scrub(text: str, key: str) -> str:
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


def tool_arguments(raw: Any, tool: str, model: ModelSpec) -> dict[str, Any]:
    """A tool call's arguments as a dict: a JSON object (text or already decoded), or
    ``provider_bad_response``."""
    if raw is None or raw == "":
        return {}
    value: Any = raw
    if isinstance(raw, str):
        try:
            value = parse_json(raw, source="tool arguments")
        except DocumentError:
            value = None
    if not isinstance(value, dict):
        raise ProviderError(
            f"Provider '{model.provider}' (model '{model.name}') sent arguments for tool "
            f"'{tool}' that are not a JSON object.",
            code=ErrorCode.provider_bad_response,
            tool=tool,
        )
    return dict(value)


def tool_choice(
    model: ModelSpec, tools: Sequence[ToolDefinition]
) -> tuple[Literal["auto", "required", "none", "tool"], str | None]:
    """What the model may do with the ``tools`` offered: ``model.tool_choice`` (``auto`` when
    unset) as a mode and, for ``{name}``, the tool. A named tool that is not offered is a
    configuration error raised before anything is sent, not a request the provider would
    refuse or quietly ignore."""
    choice = model.tool_choice or "auto"
    if not isinstance(choice, ToolChoiceName):
        return choice, None
    if choice.name not in {t.name for t in tools}:
        raise ProviderError(
            f"Model '{model.name}' has tool_choice '{choice.name}', which is not one of the "
            f"tools offered to it ({', '.join(sorted(t.name for t in tools))}).",
            code=ErrorCode.provider_config_invalid,
            field="model.tool_choice.name",
        )
    return "tool", choice.name


def bad_response(model: ModelSpec, what: str) -> ProviderError:
    return ProviderError(
        f"Provider '{model.provider}' (model '{model.name}') {what}.",
        code=ErrorCode.provider_bad_response,
    )


__all__ = [
    "Adapter",
    "Fault",
    "RemoteProvider",
    "bad_response",
    "error_text",
    "retry_after",
    "scrub",
    "tool_arguments",
    "tool_choice",
    "transport_fault",
]
