"""An agent's middleware (``agent.middleware``) applied around its model and tool calls.

Each layer acts at the points its kind names, and at each point the layers act in the order
the spec lists them (a redaction before a guardrail means the guardrail sees redacted text):

=============  ===============================================================================
point          layers
=============  ===============================================================================
input          ``guardrail`` (stage ``input``: fails the step), ``redaction`` (``input``): on
               the agent's input text, once, before the transcript records it
model call     ``memory``: the messages sent are the system prompt and the newest
               ``max_messages`` others (the transcript itself stays whole)
output         ``guardrail`` (``output``: fails the step), ``redaction`` (``output``): on the
               final answer, before the transcript records it
tool call      ``guardrail`` (``tool_call``, over the arguments as JSON) and ``tool_policy``:
               a refusal is the model's tool result, and nobody is asked to approve it
tool result    ``redaction`` (``tool_result``), ``guardrail`` (``tool_result``: the result is
               withheld, the model told why), before the transcript records it
=============  ===============================================================================

What a layer does to recorded text is recorded with it, so a resumed agent never applies it
twice. A ``function`` is resolved through the trust kernel with the run's grant each time a
layer reaches it (:func:`kneo.kernel.resolve_callable`), so a run resumed under narrower
rules reaches nothing its grant no longer allows.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from kneo.engine.providers.base import ChatMessage, ToolCall
from kneo.errors import ErrorCode, KneoError
from kneo.redaction import redact_text
from kneo.spec.extensions import (
    GuardrailMiddleware,
    MemoryMiddleware,
    RedactionMiddleware,
    ToolPolicyMiddleware,
)
from kneo.spec.models import AgentSpec

#: ``(ref, path)`` -> the function, through the kernel with the run's grant
Resolver = Callable[[str, str], Callable[..., Any]]


class GuardrailBlocked(KneoError):
    """A guardrail blocked an agent's input or output: the step fails."""

    code = ErrorCode.guardrail_blocked


class MiddlewareChain:
    """The layers of one agent, in order, at each point of its loop."""

    def __init__(self, agent: AgentSpec, resolve: Resolver, *, at: str = "agent") -> None:
        self._agent = agent.name
        self._layers = list(enumerate(agent.middleware))
        self._resolve = resolve
        self._at = at

    def _function(self, index: int, ref: str) -> Callable[..., Any]:
        return self._resolve(ref, f"{self._at}.middleware[{index}].function")

    def _blocked(self, index: int, layer: GuardrailMiddleware, text: str) -> str | None:
        """Why ``layer`` blocks ``text`` (``None``: it passes)."""
        if layer.pattern is not None:
            flags = re.IGNORECASE if layer.ignore_case else 0
            if re.search(layer.pattern, text, flags):
                return f"guardrail '{layer.name}' matched its pattern"
            return None
        assert layer.function is not None
        reason = self._function(index, layer.function)(text)
        return None if reason is None or reason is False else f"guardrail '{layer.name}': {reason}"

    def _redacted(self, index: int, layer: RedactionMiddleware, text: str) -> str:
        for pattern in layer.patterns:
            text = re.sub(pattern, layer.replacement, text)
        if layer.builtin:
            text = redact_text(text)
        if layer.function is not None:
            text = str(self._function(index, layer.function)(text))
        return text

    def _text(self, stage: str, text: str) -> str:
        """``text`` through the guardrails and redactions of ``stage`` (input or output)."""
        for index, layer in self._layers:
            if isinstance(layer, GuardrailMiddleware) and layer.stage == stage:
                reason = self._blocked(index, layer, text)
                if reason is not None:
                    raise GuardrailBlocked(
                        f"agent '{self._agent}': the {stage} was blocked by {reason}",
                        agent=self._agent,
                        stage=stage,
                        middleware=index,
                    )
            elif isinstance(layer, RedactionMiddleware) and stage in layer.stages:
                text = self._redacted(index, layer, text)
        return text

    def input(self, text: str) -> str:
        return self._text("input", text)

    def output(self, text: str) -> str:
        return self._text("output", text)

    def messages(self, messages: Sequence[ChatMessage]) -> list[ChatMessage]:
        """What the model is sent: each ``memory`` layer keeps the leading system prompt and
        the newest ``max_messages`` others, never starting on an orphan tool result."""
        out = list(messages)
        for _, layer in self._layers:
            if isinstance(layer, MemoryMiddleware):
                head = out[:1] if out and out[0].role == "system" else []
                rest = out[len(head) :]
                if len(rest) > layer.max_messages:
                    rest = rest[-layer.max_messages :]
                    while rest and rest[0].role == "tool":
                        rest = rest[1:]
                out = head + rest
        return out

    def tool_call(self, call: ToolCall) -> str | None:
        """Why a layer refuses ``call`` (``None``: every layer lets it through)."""
        for index, layer in self._layers:
            if isinstance(layer, ToolPolicyMiddleware):
                if layer.allow is not None and call.name not in layer.allow:
                    return f"tool '{call.name}' is not in the middleware's allow list"
                if call.name in layer.deny:
                    return f"tool '{call.name}' is denied by the middleware"
                if layer.function is not None:
                    reason = self._function(index, layer.function)(call.name, dict(call.arguments))
                    if reason is not None and reason is not False:
                        return f"tool '{call.name}' refused: {reason}"
            elif isinstance(layer, GuardrailMiddleware) and layer.stage == "tool_call":
                arguments = json.dumps(dict(call.arguments), sort_keys=True, default=str)
                reason = self._blocked(index, layer, arguments)
                if reason is not None:
                    return f"tool '{call.name}' call blocked by {reason}"
        return None

    def tool_result(self, name: str, content: str) -> str:
        """A tool's result as the model receives it and the transcript records it."""
        for index, layer in self._layers:
            if isinstance(layer, RedactionMiddleware) and "tool_result" in layer.stages:
                content = self._redacted(index, layer, content)
            elif isinstance(layer, GuardrailMiddleware) and layer.stage == "tool_result":
                reason = self._blocked(index, layer, content)
                if reason is not None:
                    return f"The result of tool '{name}' was withheld: {reason}."
        return content
