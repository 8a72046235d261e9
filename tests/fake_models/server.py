"""One local HTTP server on 127.0.0.1 that speaks OpenAI chat completions (and Azure
OpenAI's deployment routes), the Anthropic Messages API and the Gemini API's
``generateContent``, each as its provider documents the request and response JSON.

The official SDKs are pointed at it by base URL. What it answers is chosen by the request's
model name (Azure: the deployment; Gemini: the path's model):

* a **script** registered with :meth:`FakeModels.script` — the ``dummy`` provider's format:
  turn *n* (the number of assistant turns in the conversation it was sent) is ``{"text"}``
  or ``{"tool_calls": [{"name", "arguments"}]}`` (several: parallel calls), ``"stop":
  "max_tokens"`` cuts the reply off, and ``{last_tool_result}`` is the content of the last
  tool result it was sent;
* **faults** queued with :meth:`FakeModels.fail` before the model's next replies: a status
  with the provider's error body and optional ``Retry-After``;
* ``slow`` (answers after 5 s), ``echo-key`` (a 401 that echoes the key it was sent, like a
  careless upstream), ``bad-args`` (tool arguments that are not a JSON object).

Usage is reported in each provider's fields: 10 input tokens per message sent, 7 output
tokens per reply. Every request is kept, parsed from its wire format into :class:`Seen`, so
tests assert what each SDK actually sent.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

INPUT_PER_MESSAGE = 10
OUTPUT_PER_REPLY = 7


@dataclass
class Seen:
    """One request as the server read it, in the same shape for every wire format."""

    dialect: str
    model: str
    key: str
    system: str
    #: ``(role, text)`` of each user or assistant text
    texts: list[tuple[str, str]]
    #: tool calls of the assistant turns: ``(id, name, arguments)``
    calls: list[tuple[str | None, str, dict[str, Any]]]
    #: tool results: ``(call id, name, content)``
    results: list[tuple[str | None, str | None, str]]
    tools: list[str]
    assistant_turns: int
    body: dict[str, Any]
    headers: dict[str, str]
    query: str = ""
    #: what the real API refuses with a 400 (a Gemini call sent back without its signature)
    problems: list[str] = field(default_factory=list)


@dataclass
class FakeModels:
    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    scripts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    faults: dict[str, deque[tuple[int, str, float | None]]] = field(
        default_factory=lambda: defaultdict(deque)
    )
    lock: threading.Lock = field(default_factory=threading.Lock)

    def script(self, model: str, turns: list[dict[str, Any]]) -> None:
        self.scripts[model] = turns

    def fail(
        self, model: str, status: int, message: str = "try again", retry_after: float | None = None
    ) -> None:
        """The model's next reply is this error instead (queue several for several)."""
        self.faults[model].append((status, message, retry_after))

    def hits(self, model: str) -> int:
        return sum(1 for s in self.seen if s.model == model)

    def requests(self, model: str) -> list[Seen]:
        return [s for s in self.seen if s.model == model]


# ---------------------------------------------------------------------- wire formats


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content if isinstance(b, dict))
    return ""


class OpenAIChat:
    """``POST /v1/chat/completions`` (Bearer key); Azure: ``POST
    /openai/deployments/{deployment}/chat/completions?api-version=...`` (``api-key``)."""

    name = "openai"
    _azure = re.compile(r"^/openai/deployments/([^/]+)/chat/completions$")

    def matches(self, path: str) -> str | None:
        if path.endswith("/chat/completions") and not self._azure.match(path):
            return ""
        found = self._azure.match(path)
        return unquote(found.group(1)) if found else None

    def parse(self, body: dict[str, Any], headers: dict[str, str], model: str) -> Seen:
        texts, calls, results, system = [], [], [], []
        turns = 0
        for m in body.get("messages", []):
            role = m["role"]
            if role in ("system", "developer"):
                system.append(_text_of(m.get("content")))
            elif role == "tool":
                results.append((m.get("tool_call_id"), None, _text_of(m.get("content"))))
            else:
                if role == "assistant":
                    turns += 1
                    for c in m.get("tool_calls") or []:
                        fn = c["function"]
                        calls.append((c["id"], fn["name"], json.loads(fn["arguments"] or "{}")))
                if m.get("content"):
                    texts.append((role, _text_of(m["content"])))
        key = headers.get("api-key") or headers.get("authorization", "").removeprefix("Bearer ")
        return Seen(
            "azure" if headers.get("api-key") else "openai",
            model or body["model"],
            key,
            "\n".join(system),
            texts,
            calls,
            results,
            [t["function"]["name"] for t in body.get("tools") or []],
            turns,
            body,
            headers,
        )

    def reply(self, seen: Seen, text: str | None, calls: list[dict[str, Any]], stop: str) -> Any:
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if calls:
            message["tool_calls"] = [
                {
                    "id": f"call_{seen.assistant_turns}_{i}",
                    "type": "function",
                    "function": {"name": c["name"], "arguments": c["arguments_text"]},
                }
                for i, c in enumerate(calls)
            ]
        finish = {"max_tokens": "length"}.get(stop, "tool_calls" if calls else "stop")
        used = INPUT_PER_MESSAGE * len(seen.body.get("messages", []))
        return {
            "id": f"chatcmpl-{len(seen.texts)}",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": seen.model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {
                "prompt_tokens": used,
                "completion_tokens": OUTPUT_PER_REPLY,
                "total_tokens": used + OUTPUT_PER_REPLY,
            },
        }

    def error(self, status: int, message: str) -> Any:
        kind = {429: "rate_limit_exceeded", 401: "invalid_api_key"}.get(status, "server_error")
        return {"error": {"message": message, "type": kind, "param": None, "code": kind}}


class AnthropicMessagesWire:
    """``POST /v1/messages`` (the key as ``x-api-key`` or, from SDK 2, a bearer token;
    ``anthropic-version``)."""

    name = "anthropic"

    def matches(self, path: str) -> str | None:
        return "" if path.endswith("/v1/messages") else None

    def parse(self, body: dict[str, Any], headers: dict[str, str], model: str) -> Seen:
        texts, calls, results = [], [], []
        turns = 0
        for m in body.get("messages", []):
            blocks = (
                m["content"]
                if isinstance(m["content"], list)
                else [{"type": "text", "text": m["content"]}]
            )
            if m["role"] == "assistant":
                turns += 1
            for b in blocks:
                if b["type"] == "text":
                    texts.append((m["role"], b["text"]))
                elif b["type"] == "tool_use":
                    calls.append((b["id"], b["name"], b["input"]))
                elif b["type"] == "tool_result":
                    results.append((b["tool_use_id"], None, _text_of(b.get("content"))))
        system = body.get("system") or ""
        return Seen(
            self.name,
            body["model"],
            headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer "),
            system if isinstance(system, str) else _text_of(system),
            texts,
            calls,
            results,
            [t["name"] for t in body.get("tools") or []],
            turns,
            body,
            headers,
        )

    def reply(self, seen: Seen, text: str | None, calls: list[dict[str, Any]], stop: str) -> Any:
        content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
        content += [
            {
                "type": "tool_use",
                "id": f"toolu_{seen.assistant_turns}_{i}",
                "name": c["name"],
                "input": c["arguments"],
            }
            for i, c in enumerate(calls)
        ]
        reason = {"max_tokens": "max_tokens"}.get(stop, "tool_use" if calls else "end_turn")
        return {
            "id": f"msg_{seen.assistant_turns}",
            "type": "message",
            "role": "assistant",
            "model": seen.model,
            "content": content,
            "stop_reason": reason,
            "stop_sequence": None,
            "usage": {
                "input_tokens": INPUT_PER_MESSAGE * len(seen.body.get("messages", [])),
                "output_tokens": OUTPUT_PER_REPLY,
            },
        }

    def error(self, status: int, message: str) -> Any:
        kind = {
            429: "rate_limit_error",
            401: "authentication_error",
            400: "invalid_request_error",
            529: "overloaded_error",
        }.get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": message}}


class GeminiGenerate:
    """``POST /{version}/models/{model}:generateContent`` (``x-goog-api-key``). Function
    calls carry no id (as the Gemini API sends them) and a ``thoughtSignature``."""

    name = "google"
    _path = re.compile(r"^/v1(?:beta|alpha)?/models/([^/:]+):generateContent$")

    def matches(self, path: str) -> str | None:
        found = self._path.match(path)
        return unquote(found.group(1)) if found else None

    def parse(self, body: dict[str, Any], headers: dict[str, str], model: str) -> Seen:
        texts, calls, results, problems = [], [], [], []
        turns = 0
        for content in body.get("contents", []):
            if content.get("role") == "model":
                turns += 1
            for part in content.get("parts", []):
                if "text" in part:
                    texts.append((content.get("role", "user"), part["text"]))
                if "functionCall" in part:
                    fc = part["functionCall"]
                    calls.append((fc.get("id"), fc["name"], fc.get("args") or {}))
                    if part.get("thoughtSignature") != _signature(fc["name"]):
                        problems.append(
                            f"Function call {fc['name']} is missing a thought_signature"
                        )
                if "functionResponse" in part:
                    fr = part["functionResponse"]
                    results.append(
                        (fr.get("id"), fr.get("name"), str((fr.get("response") or {})["result"]))
                    )
        instruction = body.get("systemInstruction") or {}
        system = "".join(p.get("text", "") for p in instruction.get("parts", []))
        declarations = [
            d["name"] for t in body.get("tools") or [] for d in t.get("functionDeclarations") or []
        ]
        return Seen(
            self.name,
            model,
            headers.get("x-goog-api-key", ""),
            system,
            texts,
            calls,
            results,
            declarations,
            turns,
            body,
            headers,
            problems=problems,
        )

    def reply(self, seen: Seen, text: str | None, calls: list[dict[str, Any]], stop: str) -> Any:
        parts: list[dict[str, Any]] = [{"text": text}] if text else []
        parts += [
            {
                "functionCall": {"name": c["name"], "args": c["arguments"]},
                "thoughtSignature": _signature(c["name"]),
            }
            for c in calls
        ]
        used = INPUT_PER_MESSAGE * len(seen.body.get("contents", []))
        return {
            "candidates": [
                {
                    "content": {"role": "model", "parts": parts},
                    "finishReason": "MAX_TOKENS" if stop == "max_tokens" else "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": {
                "promptTokenCount": used,
                "candidatesTokenCount": OUTPUT_PER_REPLY,
                "totalTokenCount": used + OUTPUT_PER_REPLY,
            },
            "modelVersion": seen.model,
            "responseId": f"resp-{seen.assistant_turns}",
        }

    def error(self, status: int, message: str) -> Any:
        name = {
            429: "RESOURCE_EXHAUSTED",
            400: "INVALID_ARGUMENT",
            401: "UNAUTHENTICATED",
            500: "INTERNAL",
            503: "UNAVAILABLE",
        }.get(status, "UNKNOWN")
        return {"error": {"code": status, "message": message, "status": name}}


def _signature(name: str) -> str:
    return base64.b64encode(f"sig:{name}".encode()).decode()


DIALECTS = (OpenAIChat(), AnthropicMessagesWire(), GeminiGenerate())


# ---------------------------------------------------------------------- answering


def _render(value: Any, last: str) -> Any:
    if isinstance(value, str):
        return value.replace("{last_tool_result}", last)
    if isinstance(value, dict):
        return {k: _render(v, last) for k, v in value.items()}
    if isinstance(value, list):
        return [_render(v, last) for v in value]
    return value


def answer(state: FakeModels, dialect: Any, seen: Seen) -> tuple[int, Any, dict[str, str]]:
    """The status, body and extra headers of the reply to ``seen``."""
    with state.lock:
        queued = state.faults[seen.model]
        fault = queued.popleft() if queued else None
    if fault is not None:
        status, message, wait = fault
        headers = {"Retry-After": f"{wait:g}"} if wait is not None else {}
        return status, dialect.error(status, message), headers
    if seen.problems:
        return 400, dialect.error(400, "; ".join(seen.problems)), {}
    if seen.model == "echo-key":
        return 401, dialect.error(401, f"Incorrect API key provided: {seen.key}"), {}
    if seen.model == "slow":
        time.sleep(5.0)  # far past any client timeout the tests set (daemon threads)
    script = state.scripts.get(seen.model) or [{"text": f"hello from {seen.model}"}]
    turn = script[min(seen.assistant_turns, len(script) - 1)]
    last = seen.results[-1][2] if seen.results else ""
    calls = [
        {
            "name": c["name"],
            "arguments": _render(c.get("arguments") or {}, last),
            "arguments_text": json.dumps(_render(c.get("arguments") or {}, last)),
        }
        for c in turn.get("tool_calls") or []
    ]
    if seen.model == "bad-args":
        calls = [{"name": "t", "arguments": "{no", "arguments_text": "{no"}]
    text = _render(turn["text"], last) if turn.get("text") is not None else None
    return 200, dialect.reply(seen, text, calls, str(turn.get("stop") or "")), {}


def _chunks(completion: dict[str, Any]) -> list[dict[str, Any]]:
    """A chat completion as stream chunks: its text 4 characters at a time, each tool call
    whole, the finish reason, then the usage (``stream_options.include_usage``)."""
    choice = completion["choices"][0]
    message = choice["message"]
    head = {k: completion[k] for k in ("id", "created", "model")} | {
        "object": "chat.completion.chunk"
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return head | {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    out = [chunk({"role": "assistant", "content": ""})]
    text = message.get("content") or ""
    out += [chunk({"content": text[i : i + 4]}) for i in range(0, len(text), 4)]
    for i, call in enumerate(message.get("tool_calls") or []):
        out.append(chunk({"tool_calls": [{"index": i, **call}]}))
    out.append(chunk({}, choice["finish_reason"]))
    out.append(head | {"choices": [], "usage": completion["usage"]})
    return out


@contextmanager
def serve() -> Iterator[FakeModels]:
    """The server, started on an ephemeral port, stopped on exit."""
    state = FakeModels()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the real APIs

        def do_POST(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            headers = {k.lower(): v for k, v in self.headers.items()}
            for dialect in DIALECTS:
                model = dialect.matches(parts.path)
                if model is not None:
                    break
            else:
                return self._send(404, {"error": {"message": f"no route {parts.path}"}}, {})
            seen = dialect.parse(body, headers, model)
            seen.query = parts.query
            with state.lock:
                state.seen.append(seen)
            status, payload, extra = answer(state, dialect, seen)
            if status == 200 and body.get("stream") and payload.get("object") == "chat.completion":
                return self._send_stream(_chunks(payload))
            return self._send(status, payload, extra)

        def _send_stream(self, chunks: list[dict[str, Any]]) -> None:
            """A chat completion as OpenAI streams it (``stream: true``): server-sent events
            of ``chat.completion.chunk`` objects, then ``[DONE]``."""
            lines = [f"data: {json.dumps(c)}\n\n" for c in chunks] + ["data: [DONE]\n\n"]
            data = "".join(lines).encode()
            try:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def _send(self, status: int, payload: Any, extra: dict[str, str]) -> None:
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in extra.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (the timeout test)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
