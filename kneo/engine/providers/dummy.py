"""The ``dummy`` provider: deterministic, offline, scripted from the spec's ``model.script``.

Determinism is what makes resume testable: the reply is a pure function of the messages, so a
resumed run that rebuilds the same conversation gets the same reply a fresh run would.

Rule: the turn index is the number of ``assistant`` messages already in ``messages``; the
N-th model turn of a conversation answers with ``script[N]`` and the last entry repeats.
An empty script echoes the last user message (``"echo: <text>"``). Text (and string tool
arguments) may use ``{input}`` (the last user message) and ``{last_tool_result}`` (content
of the last ``tool`` message); nothing else is interpreted, so JSON braces pass through.
Tool-call ids are ``call_<turn>_<i>``.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from kneo.engine.providers.base import ChatMessage, ModelReply, ToolCall
from kneo.kernel import NetworkGrant
from kneo.spec.models import DummyScriptTurn, ModelSpec
from kneo.tools import ToolDefinition

ECHO_PREFIX = "echo: "


class DummyProvider:
    """In-process scripted model. ``calls`` records every conversation it was sent.

    When ``call_log`` is set (``KNEO_DUMMY_CALL_LOG``), each call also appends one JSON line
    ``{"model", "turn", "messages", "pid"}`` to that file, so a test in another process can
    assert that earlier turns were not re-sent after a resume, and which process made each
    call.
    """

    name = "dummy"

    def __init__(self, *, call_log: Path | None = None) -> None:
        self.call_log = call_log
        self.calls: list[list[ChatMessage]] = []
        self._lock = threading.Lock()

    def complete_stream(
        self,
        *,
        model: ModelSpec,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolDefinition],
        reach: NetworkGrant | None = None,
        on_text: Callable[[str], None],
    ) -> ModelReply:
        """:meth:`complete`, its text handed to ``on_text`` a few characters at a time first."""
        reply = self.complete(model=model, messages=messages, tools=tools, reach=reach)
        text = reply.text or ""
        for start in range(0, len(text), 5):
            on_text(text[start : start + 5])
        return reply

    def complete(
        self,
        *,
        model: ModelSpec,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolDefinition],
        reach: NetworkGrant | None = None,
    ) -> ModelReply:
        turn = turn_index(messages)
        self._record(model, turn, messages)
        context = {
            "{input}": last_content(messages, "user"),
            "{last_tool_result}": last_content(messages, "tool"),
        }
        script = model.script
        step: DummyScriptTurn | None = script[min(turn, len(script) - 1)] if script else None
        text: str | None
        if step is None or (step.echo and not step.tool_calls):
            text = ECHO_PREFIX + context["{input}"]
            return ModelReply(text=text, usage=_usage(messages, text), stop_reason="stop")
        calls = tuple(
            ToolCall(
                id=f"call_{turn}_{i}",
                name=scripted.name,
                arguments=_render_value(scripted.arguments, context),
            )
            for i, scripted in enumerate(step.tool_calls)
        )
        text = _render(step.text, context) if step.text is not None else None
        if step.echo:
            text = ECHO_PREFIX + context["{input}"]
        if text is None and not calls:
            text = ""
        return ModelReply(
            text=text,
            tool_calls=calls,
            usage=_usage(messages, text or ""),
            stop_reason="tool_calls" if calls else "stop",
        )

    def _record(self, model: ModelSpec, turn: int, messages: Sequence[ChatMessage]) -> None:
        with self._lock:
            self.calls.append(list(messages))
            if self.call_log is None:
                return
            line = json.dumps(
                {
                    "model": model.name,
                    "turn": turn,
                    "messages": [m.to_dict() for m in messages],
                    "pid": os.getpid(),
                },
                sort_keys=True,
                default=str,
            )
            self.call_log.parent.mkdir(parents=True, exist_ok=True)
            # One write() on an O_APPEND descriptor: lines from concurrent processes don't mix.
            fd = os.open(self.call_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                os.write(fd, (line + "\n").encode("utf-8"))
            finally:
                os.close(fd)


def turn_index(messages: Sequence[ChatMessage]) -> int:
    """How many model turns the conversation already holds (its assistant messages)."""
    return sum(1 for m in messages if m.role == "assistant")


def last_content(messages: Sequence[ChatMessage], role: str) -> str:
    for message in reversed(messages):
        if message.role == role:
            return message.content or ""
    return ""


def read_call_log(path: Path) -> list[dict[str, Any]]:
    """The entries of a call log file, oldest first (missing file = no calls)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def _render(text: str, context: dict[str, str]) -> str:
    for placeholder, value in context.items():
        text = text.replace(placeholder, value)
    return text


def _render_value(value: object, context: dict[str, str]) -> Any:
    if isinstance(value, str):
        return _render(value, context)
    if isinstance(value, dict):
        return {k: _render_value(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [_render_value(v, context) for v in value]
    return value


def _usage(messages: Sequence[ChatMessage], text: str) -> dict[str, int]:
    prompt = sum(len((m.content or "").split()) for m in messages)
    completion = len(text.split())
    return {"input_tokens": prompt, "output_tokens": completion}
