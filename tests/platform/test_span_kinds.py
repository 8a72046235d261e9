"""Span kinds per the semantic conventions: a call out of the process is a ``CLIENT`` span.

A ``chat`` with a remote provider (the official OpenAI SDK against a local server speaking its
API), an MCP tool (a real SDK server over stdio) and an A2A push (an HTTP POST to the
client's webhook) each cross to another service; the ``dummy`` provider and a Python tool run
in the process and stay ``INTERNAL``. Attribute names are checked against the conventions
package's own constants.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes, mcp_attributes
from opentelemetry.semconv.attributes import http_attributes
from opentelemetry.trace import SpanKind

from kneo import tracing
from kneo.kernel import AllowList
from kneo.platform import create_platform
from kneo.platform.a2a_push import PushGrant, PushSender, seal
from kneo.settings import Settings
from kneo.spec.project import ProjectContext
from kneo.store import open_store
from kneo.store.outbox.a2a_push import PushTarget
from kneo.store.outbox.notifications import NotificationEvent
from tests.fake_models.server import serve
from tests.mcp_tests.conftest import agent_spec, call, declare_servers, stdio_import

PUSH_SECRET = "push-secret-for-span-kinds-0123456789"


@pytest.fixture()
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "_tracer", provider.get_tracer("kneo"))
    yield exporter
    provider.shutdown()


def _named(spans: InMemorySpanExporter, prefix: str) -> list[ReadableSpan]:
    return [s for s in spans.get_finished_spans() if s.name.startswith(prefix)]


def _manager(project: Path, **env: str) -> Any:
    settings = Settings.from_env(env)
    return create_platform(settings, ProjectContext.discover(cwd=project, settings=settings))


def test_a_chat_with_a_remote_provider_is_a_client_span(
    spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    local = {"provider": "dummy", "name": "scripted", "script": [{"text": "here"}]}
    with serve() as fake:
        fake.script("remote-model", [{"text": "there"}])
        remote = {"provider": "openai", "name": "remote-model", "base_url": fake.url + "/v1"}
        manager = _manager(tmp_path, OPENAI_API_KEY="sk-span-kinds-000000000000000000")
        try:
            for model in (remote, local):
                spec = {"version": "v1", "agent": {"name": "a", "model": model}}
                assert manager.run_from_spec(input_text="hi", spec=spec).status == "succeeded"
        finally:
            manager.store.close()
    kinds = {
        s.attributes[gen_ai_attributes.GEN_AI_PROVIDER_NAME]: s.kind for s in _named(spans, "chat ")
    }
    assert kinds == {"openai": SpanKind.CLIENT, "dummy": SpanKind.INTERNAL}
    for run in _named(spans, "invoke_agent "):  # the agent itself runs here
        assert run.kind == SpanKind.INTERNAL


def test_an_mcp_tool_call_is_a_client_span(spans: InMemorySpanExporter, tmp_path: Path) -> None:
    (tmp_path / ".kneo").mkdir()
    declare_servers(tmp_path)
    spec = agent_spec(
        [stdio_import(tmp_path, tools=["lookup_user"])],
        [call("lookup_user", user_id="u-002"), {"text": "answer: {last_tool_result}"}],
    )
    manager = _manager(tmp_path)
    try:
        result = manager.run_from_spec(input_text="go", spec=spec)
    finally:
        manager.store.close()
    assert result.output_text == "answer: bob@example.com"
    [tool] = _named(spans, "execute_tool ")
    assert tool.kind == SpanKind.CLIENT
    assert tool.attributes[mcp_attributes.MCP_METHOD_NAME] == "tools/call"
    assert tool.attributes[gen_ai_attributes.GEN_AI_TOOL_NAME] == "lookup_user"
    assert tool.attributes[gen_ai_attributes.GEN_AI_TOOL_TYPE] == "extension"
    assert tool.attributes["kneo.mcp.server"] == "fixture"


def test_a_python_tool_call_stays_internal(spans: InMemorySpanExporter, tmp_path: Path) -> None:
    (tmp_path / "localtools.py").write_text("def echo(args):\n    return 'echo'\n")
    spec = {
        "version": "v1",
        "agent": {
            "name": "a",
            "tools": ["echo"],
            "model": {"provider": "dummy", "name": "d", "script": [
                {"tool_calls": [{"name": "echo", "arguments": {}}]}, {"text": "ok"}]},
        },
        "components": {"tools": {"echo": {"implementation": "localtools:echo"}}},
    }  # fmt: skip
    import sys

    sys.path.insert(0, str(tmp_path))
    manager = _manager(tmp_path)
    try:
        assert manager.run_from_spec(input_text="go", spec=spec).status == "succeeded"
    finally:
        manager.store.close()
        sys.path.remove(str(tmp_path))
    [tool] = _named(spans, "execute_tool ")
    assert tool.kind == SpanKind.INTERNAL
    assert mcp_attributes.MCP_METHOD_NAME not in tool.attributes
    assert tool.attributes[gen_ai_attributes.GEN_AI_TOOL_TYPE] == "function"


class _Hook(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_an_a2a_push_is_a_client_span(spans: InMemorySpanExporter, tmp_path: Path) -> None:
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{receiver.server_address[1]}/hook?token=sealed-in-the-url"
    store = open_store(f"sqlite:///{tmp_path / 'push.sqlite'}")
    try:
        with store.transaction() as tx:
            run_id = tx.create_run(target="workflow", input_text="x").run_id
        target = PushTarget(
            push_id="p_1", origin=url.rpartition("/")[0], auth_scheme=None,
            sealed=seal(PUSH_SECRET, "p_1", {"token": "tok-1", "url": url}),
            sees_requests=False,
        )  # fmt: skip
        store.a2a_push.set_push_config(run_id, "agent", "p_1", target)
        grant = PushGrant(AllowList.parse([url.rpartition("/")[0]], variable="V"), PUSH_SECRET)
        sender = PushSender(store.a2a_push, grant, timeout=5)
        event = NotificationEvent(
            "e_1", "a2a.task_status", "info", None, None, None, run_id, None,
            {"push_id": "p_1", "body": {"task": {"id": run_id}}}, datetime.now(UTC),
        )  # fmt: skip
        assert sender.send(event, datetime.now(UTC)) == 204
        sender.close()
    finally:
        store.close()
        receiver.shutdown()
    [push] = _named(spans, "POST a2a push")
    assert push.kind == SpanKind.CLIENT
    assert push.attributes[http_attributes.HTTP_REQUEST_METHOD] == "POST"
    assert push.attributes[http_attributes.HTTP_RESPONSE_STATUS_CODE] == 204
    assert "sealed-in-the-url" not in push.to_json() and "tok-1" not in push.to_json()
