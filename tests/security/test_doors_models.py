"""The doors of issue 54's local model servers: the ``llama-cpp`` provider name and the
model call's timeout.

A spec naming ``provider: llama-cpp`` talks to a server the spec points at. The caller who
should not pass is a spec author (a pull request) aiming it at a listener: no key the project
declared for another provider may ride along (a real listener records the headers), the
destination is the grant's as for every model, and a listener that never answers cannot hold
the run past the timeout.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from kneo.destinations import NO_KEY
from kneo.engine.providers import ChatMessage, remote_provider
from kneo.errors import AccessDenied, ProviderError
from kneo.policy.access import HostAccess
from kneo.settings import Settings
from kneo.spec.models import ModelSpec
from kneo.spec.project import ProjectConfig

OPENAI_KEY = "sk-planted-openai-key-5e0b7a2c"
LOCAL_KEY = "planted-local-llm-key-19c4"
PROMPT = "the confidential prompt 8d3f"
SETTINGS = Settings.from_env({"OPENAI_API_KEY": OPENAI_KEY, "LOCAL_LLM_KEY": LOCAL_KEY})
REPLY = {
    "id": "c1",
    "object": "chat.completion",
    "created": 0,
    "model": "m",
    "choices": [
        {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "ok"}}
    ],
}


class Listener(ThreadingHTTPServer):
    """Records every request; answers like a chat-completions server, or never (``hang``)."""

    daemon_threads = True

    def __init__(self, hang: bool = False) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.hang = hang
        self.release = threading.Event()
        self.requests: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class _Handler(BaseHTTPRequestHandler):
    server: Listener

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.server.requests.append({"headers": headers, "body": body})
        if self.server.hang:
            self.server.release.wait(30)
            return
        data = json.dumps(REPLY).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _listen(hang: bool = False) -> Iterator[Listener]:
    server = Listener(hang)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def listener() -> Iterator[Listener]:
    yield from _listen()


@pytest.fixture
def silent() -> Iterator[Listener]:
    yield from _listen(hang=True)


def grant(listener: Listener, secrets: dict[str, Any] | None = None) -> HostAccess:
    """The ``test`` environment (not dev: loopback only where listed) allowing the listener;
    the project declares OPENAI_API_KEY for ``openai`` (the default) and ``secrets``."""
    project = ProjectConfig.model_validate(
        {
            "version": "v1",
            "environments": {"test": {}},
            "network": {"allow": [listener.url.removesuffix("/v1")]},
            "secrets": secrets or {},
        }
    )
    return HostAccess.for_environment(project, "test", origin="spec")


def call(access: HostAccess, model: ModelSpec) -> Any:
    """One model call under ``access``, as an agent's turn makes it."""
    resolved, reach = access.model_call(model, path="agent.model")
    return remote_provider("openai", SETTINGS).complete(
        model=resolved, messages=[ChatMessage("user", PROMPT)], tools=[], reach=reach
    )


def test_llama_cpp_takes_no_other_providers_key(listener: Listener) -> None:
    """Without ``api_key_env`` and with no key declared for it, a ``llama-cpp`` model goes
    without one (a local server ignores it): the project's OpenAI key is never read for it,
    so never sent to the server the spec names."""
    model = ModelSpec(provider="llama-cpp", name="m", base_url=listener.url)
    assert call(grant(listener), model).text == "ok"
    [request] = listener.requests
    assert request["headers"]["authorization"] == f"Bearer {NO_KEY}"
    assert OPENAI_KEY not in json.dumps(listener.requests)
    # naming the OpenAI key outright: it is bound to api.openai.com, not to this server
    with pytest.raises(AccessDenied) as bound:
        call(grant(listener), model.model_copy(update={"api_key_env": "openai"}))
    assert bound.value.code == "E_SECRET_NOT_BOUND"
    assert len(listener.requests) == 1


def test_another_provider_still_needs_its_key_declared(listener: Listener) -> None:
    """Going without a key is for the servers that may take none: a model of a provider
    that needs one (``anthropic``: its key is declared by default and bound to its own API)
    aimed at the listener is refused before any request."""
    model = ModelSpec(provider="anthropic", name="m", base_url=listener.url)
    with pytest.raises(AccessDenied) as refused:
        call(grant(listener), model)
    assert refused.value.code == "E_SECRET_NOT_BOUND"
    assert listener.requests == []


def test_a_key_declared_and_bound_for_the_server_is_what_it_gets(listener: Listener) -> None:
    """The control: the project declares the local server's key and binds it there."""
    secrets = {
        "providers": {"llama-cpp": "LOCAL_LLM_KEY"},
        "destinations": {"llama-cpp": [listener.url.removesuffix("/v1")]},
    }
    reply = call(
        grant(listener, secrets), ModelSpec(provider="llama-cpp", name="m", base_url=listener.url)
    )
    assert reply.text == "ok"
    [request] = listener.requests
    assert request["headers"]["authorization"] == f"Bearer {LOCAL_KEY}"
    assert OPENAI_KEY not in json.dumps(listener.requests) and PROMPT in request["body"]


def test_a_server_off_the_list_gets_nothing(listener: Listener, silent: Listener) -> None:
    model = ModelSpec(provider="llama-cpp", name="m", base_url=silent.url, api_key_env="local")
    secrets = {"extra": {"local": "LOCAL_LLM_KEY"}}
    with pytest.raises(AccessDenied) as refused:
        call(grant(listener, secrets), model)
    assert refused.value.code == "E_DESTINATION_NOT_ALLOWED"
    assert silent.requests == []


def test_a_server_that_never_answers_cannot_hold_the_call(silent: Listener) -> None:
    """The spec's own ``timeout_seconds`` or the 120 s default: the call ends with
    ``provider_timeout`` naming the model and the limit; the key never shows in it."""
    secrets = {"extra": {"local": "LOCAL_LLM_KEY"}, "destinations": {"local": [silent.url]}}
    model = ModelSpec(
        provider="llama-cpp",
        name="m",
        base_url=silent.url,
        api_key_env="local",
        timeout_seconds=0.5,
    )
    started = time.monotonic()
    with pytest.raises(ProviderError) as info:
        call(grant(silent, secrets), model)
    assert time.monotonic() - started < 5
    assert info.value.code == "provider_timeout"
    assert "'m'" in info.value.message and "0.5s" in info.value.message
    assert LOCAL_KEY not in str(info.value) and len(silent.requests) == 1
