"""What a local OpenAI-compatible server (llama.cpp's) needs, on the wire.

A real HTTP listener records the exact JSON Kneo sends and answers the way llama.cpp's
server does where Kneo's own fake is lenient: HTTP 500 to an assistant message whose
``content`` is ``null``, and tools left out of the prompt (a plain text reply) unless the
request carries ``tool_choice``. Another listener never answers, so the default timeout
must end the call. The real server is ``tests/engine/providers/test_llamacpp.py`` (opt-in).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from kneo import Decision
from kneo.engine.providers import ChatMessage, ToolCall, remote_provider
from kneo.engine.providers.openai_compat import QUIRKS, server_kind, to_openai_message
from kneo.errors import ProviderError
from kneo.platform import create_platform
from kneo.settings import DEFAULT_PROVIDER_TIMEOUT_SECONDS, Settings
from kneo.spec.models import ModelSpec
from kneo.spec.project import ProjectContext
from kneo.store import open_store
from kneo.tools import ToolDefinition
from tests import llamacpp_server
from tests.fake_models.server import serve

KEY = "sk-local-anything"
LOOKUP = ToolDefinition(
    name="lookup_user",
    description="Return the email for a user id.",
    parameters={
        "type": "object",
        "properties": {"user_id": {"type": "string"}},
        "required": ["user_id"],
    },
)
CLOCK = ToolDefinition(name="clock", description="The time.", parameters={"type": "object"})
USER = [ChatMessage("system", "be brief"), ChatMessage("user", "email of u-1?")]


class StrictServer(ThreadingHTTPServer):
    """``/v1/chat/completions`` as llama.cpp answers it (see the module); ``hang``: never."""

    daemon_threads = True

    def __init__(self, *, hang: bool = False) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.hang = hang
        self.release = threading.Event()
        self.bodies: list[dict[str, Any]] = []
        #: replies by the number of assistant turns sent (the last repeats): a tool call
        #: ``{"call": name, "arguments": {...}}`` or ``{"text": ...}``; empty: the fixed ones
        self.script: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class _Handler(BaseHTTPRequestHandler):
    server: StrictServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.bodies.append(body)
        if self.server.hang:
            self.server.release.wait(30)
            return
        if any(m["role"] == "assistant" and m.get("content") is None for m in body["messages"]):
            # llama.cpp's server: "Expected 'content' to be a string or an array"
            self._answer(500, {"error": {"code": 500, "message": "content must be a string"}})
            return
        if self.server.script:
            self._scripted(body)
            return
        answered = any(m["role"] == "tool" for m in body["messages"])
        if body.get("tools") and not answered and "tool_choice" not in body:
            # llama.cpp leaves the tools out of the prompt: the model cannot call one
            self._answer(200, _completion({"role": "assistant", "content": "no tools"}, "stop"))
            return
        if body.get("tools") and not answered and body["tool_choice"] != "none":
            call = {
                "id": "call_1",
                "type": "function",
                "function": {"name": "lookup_user", "arguments": '{"user_id": "u-1"}'},
            }
            message = {"role": "assistant", "content": None, "tool_calls": [call]}
            self._answer(200, _completion(message, "tool_calls"))
            return
        self._answer(200, _completion({"role": "assistant", "content": "done"}, "stop"))

    def _scripted(self, body: dict[str, Any]) -> None:
        turn = sum(1 for m in body["messages"] if m["role"] == "assistant")
        step = self.server.script[min(turn, len(self.server.script) - 1)]
        if "call" in step and "tool_choice" in body:
            call = {
                "id": f"call_{turn}",
                "type": "function",
                "function": {"name": step["call"], "arguments": json.dumps(step["arguments"])},
            }
            message = {"role": "assistant", "content": None, "tool_calls": [call]}
            self._answer(200, _completion(message, "tool_calls"))
            return
        text = step.get("text", "no tools")  # no tool_choice: tools not in the prompt
        self._answer(200, _completion({"role": "assistant", "content": text}, "stop"))

    def _answer(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _completion(message: dict[str, Any], finish: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": "local",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }


@contextmanager
def _serve(*, hang: bool = False) -> Iterator[StrictServer]:
    server = StrictServer(hang=hang)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def local() -> Iterator[StrictServer]:
    with _serve() as server:
        yield server


def _provider(env: dict[str, str] | None = None) -> Any:
    return remote_provider("openai", Settings.from_env({"OPENAI_API_KEY": KEY, **(env or {})}))


def _model(server: StrictServer, **extra: Any) -> ModelSpec:
    return ModelSpec(provider="openai-compatible", name="local", base_url=server.url, **extra)


def test_the_listener_refuses_a_null_content_as_llama_cpp_does(local: StrictServer) -> None:
    """The strictness the other tests rely on is real: null content is a 500 here."""
    body = {
        "model": "local",
        "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": None}],
    }
    request = urllib.request.Request(
        f"{local.url}/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=5)
    assert info.value.code == 500


def test_a_tool_round_trip_sends_tool_choice_and_an_empty_content(local: StrictServer) -> None:
    llm = _provider()
    model = _model(local)
    first = llm.complete(model=model, messages=USER, tools=[LOOKUP])
    assert [(c.name, c.arguments) for c in first.tool_calls] == [
        ("lookup_user", {"user_id": "u-1"})
    ]
    assert first.text is None
    conversation = [
        *USER,
        first.to_message(),
        ChatMessage("tool", "ann@example.com", tool_call_id="call_1", name="lookup_user"),
    ]
    second = llm.complete(model=model, messages=conversation, tools=[LOOKUP])
    assert second.text == "done"
    tools_request, results_request = local.bodies
    assert tools_request["tool_choice"] == "auto"
    assert [t["function"]["name"] for t in tools_request["tools"]] == ["lookup_user"]
    assistant = results_request["messages"][2]
    assert assistant["role"] == "assistant" and assistant["content"] == ""
    assert assistant["tool_calls"][0]["function"]["name"] == "lookup_user"
    assert results_request["tool_choice"] == "auto"


def test_no_tools_no_tool_choice(local: StrictServer) -> None:
    """``tool_choice`` without ``tools`` is an error on OpenAI's API: only with tools."""
    reply = _provider().complete(model=_model(local), messages=USER, tools=[])
    assert reply.text == "done"
    [body] = local.bodies
    assert "tool_choice" not in body and "tools" not in body


@pytest.mark.parametrize(
    ("choice", "sent"),
    [
        ("required", "required"),
        ("none", "none"),
        ({"name": "clock"}, {"type": "function", "function": {"name": "clock"}}),
    ],
)
def test_the_specs_tool_choice_is_sent(local: StrictServer, choice: Any, sent: Any) -> None:
    model = _model(local, tool_choice=choice)
    _provider().complete(model=model, messages=USER, tools=[LOOKUP, CLOCK])
    assert local.bodies[0]["tool_choice"] == sent


def test_a_named_tool_choice_that_is_not_offered_sends_nothing(local: StrictServer) -> None:
    model = _model(local, tool_choice={"name": "delete_everything"})
    with pytest.raises(ProviderError) as info:
        _provider().complete(model=model, messages=USER, tools=[LOOKUP])
    assert info.value.code == "provider_config_invalid"
    assert info.value.details["field"] == "model.tool_choice.name"
    assert "delete_everything" in info.value.message and "lookup_user" in info.value.message
    assert local.bodies == []


def test_llama_cpp_gets_required_by_name_or_not_at_all(local: StrictServer) -> None:
    """llama-cpp-python's server fails ``required`` with a 500: one tool is named instead,
    several are a configuration error before anything is sent."""
    model = ModelSpec(
        provider="llama-cpp", name="local", base_url=local.url, tool_choice="required"
    )
    _provider().complete(model=model, messages=USER, tools=[LOOKUP])
    assert local.bodies[0]["tool_choice"] == {
        "type": "function",
        "function": {"name": "lookup_user"},
    }
    assert local.bodies[0]["messages"][0] == {"role": "system", "content": "be brief"}
    with pytest.raises(ProviderError) as info:
        _provider().complete(model=model, messages=USER, tools=[LOOKUP, CLOCK])
    assert info.value.code == "provider_config_invalid"
    assert info.value.details["field"] == "model.tool_choice"
    assert len(local.bodies) == 1


def test_llama_cpp_without_a_base_url_is_a_configuration_error() -> None:
    """It has no default endpoint: nothing may fall back to the SDK's own (api.openai.com,
    or OPENAI_BASE_URL)."""
    with pytest.raises(ProviderError) as info:
        _provider().complete(
            model=ModelSpec(provider="llama-cpp", name="local"), messages=USER, tools=[]
        )
    assert info.value.code == "provider_config_invalid"
    assert info.value.details["field"] == "model.base_url"


def test_openai_and_azure_keep_the_documented_null() -> None:
    """Only servers that need it get ``""``: the quirk is declared per server kind."""
    message = ChatMessage("assistant", None, tool_calls=(ToolCall("c1", "clock", {}),))
    own = ModelSpec(provider="openai", name="gpt-4o")
    azure = ModelSpec(provider="azure-openai", name="d", base_url="https://r.openai.azure.com")
    local = ModelSpec(provider="openai", name="m", base_url="http://127.0.0.1:8080/v1")
    llama = ModelSpec(provider="llama-cpp", name="m", base_url="http://127.0.0.1:8080/v1")
    kinds = [server_kind(m) for m in (own, azure, local, llama)]
    assert kinds == ["openai", "azure-openai", "compatible", "llama-cpp"]
    contents = [to_openai_message(message, QUIRKS[k])["content"] for k in kinds]
    assert contents == [None, None, "", ""]
    said = ChatMessage("assistant", "checking", tool_calls=(ToolCall("c1", "clock", {}),))
    assert to_openai_message(said, QUIRKS["compatible"])["content"] == "checking"


@pytest.mark.parametrize(
    ("field", "value"),
    [("tool_choice", "sometimes"), ("tool_choice", {"name": ""}), ("timeout_seconds", 0)],
)
def test_bad_tool_choice_or_timeout_names_the_field(field: str, value: Any) -> None:
    with pytest.raises(ValidationError) as info:
        ModelSpec(provider="openai", name="m", **{field: value})
    assert field in str(info.value)


def test_a_server_that_never_answers_is_cut_off_at_the_models_timeout() -> None:
    with _serve(hang=True) as silent:
        model = _model(silent, timeout_seconds=0.5)
        started = time.monotonic()
        with pytest.raises(ProviderError) as info:
            _provider().complete(model=model, messages=USER, tools=[LOOKUP])
        elapsed = time.monotonic() - started
    assert info.value.code == "provider_timeout"
    assert "'local'" in info.value.message and "0.5s" in info.value.message
    assert info.value.details["timeout_seconds"] == 0.5
    assert info.value.details["model"] == "local"
    assert 0.4 < elapsed < 5
    assert len(silent.bodies) == 1


def test_the_setting_bounds_a_model_without_its_own_timeout() -> None:
    with _serve(hang=True) as silent:
        llm = _provider({"KNEO_SERV_PROVIDER_TIMEOUT_SECONDS": "0.4"})
        with pytest.raises(ProviderError) as info:
            llm.complete(model=_model(silent), messages=USER, tools=[])
    assert info.value.code == "provider_timeout" and "0.4s" in info.value.message


def test_a_model_call_has_a_timeout_by_default() -> None:
    assert DEFAULT_PROVIDER_TIMEOUT_SECONDS == 120
    assert Settings.from_env({}).provider_timeout_seconds == 120
    assert (
        Settings.from_env({"KNEO_SERV_PROVIDER_TIMEOUT_SECONDS": "0"}).provider_timeout_seconds
        is None
    )
    llm = _provider()
    assert llm.timeout(ModelSpec(provider="openai", name="m")) == 120
    assert llm.timeout(ModelSpec(provider="openai", name="m", timeout_seconds=7)) == 7


@pytest.mark.parametrize(
    ("choice", "claude", "gemini"),
    [
        (None, {"type": "auto"}, {"mode": "AUTO"}),
        ("required", {"type": "any"}, {"mode": "ANY"}),
        ("none", {"type": "none"}, {"mode": "NONE"}),
        (
            {"name": "clock"},
            {"type": "tool", "name": "clock"},
            {"mode": "ANY", "allowedFunctionNames": ["clock"]},
        ),
    ],
)
def test_claude_and_gemini_get_the_tool_choice_in_their_own_terms(
    choice: Any, claude: dict[str, Any], gemini: dict[str, Any]
) -> None:
    settings = Settings.from_env({"ANTHROPIC_API_KEY": KEY, "GOOGLE_API_KEY": KEY})
    with serve() as fake:
        for provider in ("anthropic", "google"):
            name = f"choice-{provider}-{time.monotonic_ns()}"
            fake.script(name, [{"text": "ok"}])
            model = ModelSpec(provider=provider, name=name, base_url=fake.url, tool_choice=choice)
            llm = remote_provider(provider, settings, secrets={})
            assert llm.complete(model=model, messages=USER, tools=[LOOKUP, CLOCK]).text == "ok"
            [seen] = fake.requests(name)
            if provider == "anthropic":
                assert seen.body["tool_choice"] == claude
            else:
                assert seen.body["toolConfig"]["functionCallingConfig"] == gemini


def test_the_llamacpp_cache_is_its_own_and_unprepared_until_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The opt-in test's setup lives under KNEO_TEST_LLAMACPP_CACHE and downloads nothing
    until ``prepare`` is asked for."""
    monkeypatch.setenv("KNEO_TEST_LLAMACPP_CACHE", str(tmp_path))
    assert llamacpp_server.cache() == tmp_path and not llamacpp_server.prepared()
    assert llamacpp_server.python().is_relative_to(tmp_path)
    assert llamacpp_server.main([]) == 2 and "prepare|serve" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_an_agent_calls_two_tools_and_one_needing_approval(
    local: StrictServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The journey the llama.cpp server broke, through the platform: three tool turns (the
    last paused for approval, then resumed) and an answer, every request to the strict
    listener with ``tool_choice`` and each earlier tool-call turn's content ``""``."""
    local.script = [
        {"call": "word_count", "arguments": {"text": "one two three"}},
        {"call": "summarize", "arguments": {"text": "one two three", "max_words": 2}},
        {"call": "publish_report", "arguments": {"report": "three words"}},
        {"text": "published"},
    ]
    (tmp_path / ".kneo").mkdir()
    config = {
        "version": "v1",
        "environments": {"dev": {}},
        "secrets": {"providers": {"llama-cpp": "LOCAL_LLM_KEY"}},
    }
    (tmp_path / ".kneo" / "config.yaml").write_text(json.dumps(config))
    model = {"provider": "llama-cpp", "name": "local", "base_url": local.url}
    agent = {
        "name": "reporter",
        "model": model,
        "tools": ["word_count", "summarize", "publish_report"],
        "approval_required": ["publish_report"],
    }
    (tmp_path / "agent.yaml").write_text(json.dumps({"version": "v1", "agent": agent}))
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env({"LOCAL_LLM_KEY": "local-key", "KNEO_ENV": "dev"})
    project = ProjectContext.discover(settings=settings, env="dev")
    store = open_store(None, settings=settings, state_dir=tmp_path / "state")
    manager = create_platform(settings, project, store=store)
    try:
        paused = manager.run_from_spec(input_text="count", spec_path=tmp_path / "agent.yaml")
        assert str(paused.status) == "paused", paused
        assert paused.continuation_id and paused.request_id
        done = manager.resume(paused.continuation_id, Decision(paused.request_id, "approved"))
    finally:
        manager.close()
    assert str(done.status) == "succeeded" and done.output_text == "published", done
    assert len(local.bodies) == 4
    assert all(body["tool_choice"] == "auto" for body in local.bodies)
    last = local.bodies[-1]["messages"]
    calls = [m for m in last if m["role"] == "assistant" and m.get("tool_calls")]
    assert [c["tool_calls"][0]["function"]["name"] for c in calls] == [
        "word_count",
        "summarize",
        "publish_report",
    ]
    assert all(c["content"] == "" for c in calls)
