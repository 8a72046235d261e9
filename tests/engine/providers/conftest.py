"""A local fake OpenAI-compatible server: real HTTP on 127.0.0.1, behaviour chosen by model name.

Models: ``plain`` (text reply), ``tools`` (a tool call until the conversation holds a tool
result, then text using it), ``flaky-500`` / ``flaky-429`` (fail twice, then succeed),
``bad-request`` (400), ``echo-key`` (401 echoing the bearer token, like a careless upstream),
``slow`` (sleeps past the client timeout), ``bad-args`` (tool arguments that are not JSON).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class FakeOpenAI:
    base_url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    hits: Counter[str] = field(default_factory=Counter)


def _completion(message: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": "fake",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }


def _reply(state: FakeOpenAI, body: dict[str, Any], auth: str) -> tuple[int, dict[str, Any]]:
    model = body["model"]
    state.hits[model] += 1
    text = {"role": "assistant", "content": f"hello from {model}"}
    if model in ("flaky-500", "flaky-429") and state.hits[model] <= 2:
        status = 500 if model == "flaky-500" else 429
        return status, {"error": {"message": "try again", "type": "server_error"}}
    if model == "bad-request":
        return 400, {"error": {"message": "unsupported parameter", "type": "invalid_request"}}
    if model == "echo-key":
        return 401, {"error": {"message": f"Incorrect API key provided: {auth}"}}
    if model == "slow":
        time.sleep(5.0)  # far past any client timeout the tests set (daemon threads: no wait)
    if model == "bad-args":
        call = {"id": "c1", "type": "function", "function": {"name": "t", "arguments": "{no"}}
        return 200, _completion({"role": "assistant", "content": None, "tool_calls": [call]})
    if model == "tools":
        results = [m for m in body["messages"] if m["role"] == "tool"]
        if results:
            text["content"] = f"the answer is {results[-1]['content']}"
        else:
            call = {
                "id": "call_abc",
                "type": "function",
                "function": {"name": "lookup_user", "arguments": json.dumps({"user_id": "u-002"})},
            }
            return 200, _completion({"role": "assistant", "content": None, "tool_calls": [call]})
    return 200, _completion(text)


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    state = FakeOpenAI(base_url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length))
            state.requests.append(body)
            state.headers.append({k.lower(): v for k, v in self.headers.items()})
            if self.path != "/v1/chat/completions":
                status, payload = 404, {"error": {"message": "not found"}}
            else:
                auth = self.headers.get("Authorization", "").removeprefix("Bearer ")
                status, payload = _reply(state, body, auth)
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout test)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
