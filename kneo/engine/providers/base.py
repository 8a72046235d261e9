"""The provider seam: one small interface every model backend implements.

Messages and replies are frozen values so they can be checkpointed as JSON and replayed;
a provider never sees the store or the clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from kneo.kernel import NetworkGrant
from kneo.spec.models import ModelSpec
from kneo.tools import ToolDefinition

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True)
class ToolCall:
    """A tool call a model asked for."""

    id: str
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    #: what a provider needs sent back with the call (Gemini's ``thought_signature``),
    #: opaque to everything else; JSON values only, kept in the transcript
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = {"id": self.id, "name": self.name, "arguments": self.arguments}
        if self.meta:
            data["meta"] = self.meta
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ToolCall:
        return cls(
            id=data["id"],
            name=data["name"],
            arguments=dict(data.get("arguments") or {}),
            meta=dict(data.get("meta") or {}),
        )


@dataclass(frozen=True)
class ChatMessage:
    """One message of a model conversation."""

    role: Role
    content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            data["tool_calls"] = [c.to_dict() for c in self.tool_calls]
        if self.tool_call_id is not None:
            data["tool_call_id"] = self.tool_call_id
        if self.name is not None:
            data["name"] = self.name
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChatMessage:
        return cls(
            role=data["role"],
            content=data.get("content"),
            tool_calls=tuple(ToolCall.from_dict(c) for c in data.get("tool_calls") or ()),
            tool_call_id=data.get("tool_call_id"),
            name=data.get("name"),
        )


#: Why a model stopped, the same for every provider: ``stop`` (a final answer), ``tool_calls``,
#: ``max_tokens`` (cut off at ``model.max_tokens``: the reply is incomplete),
#: ``content_filter`` (a refusal or a safety stop) or ``other``.
StopReason = Literal["stop", "tool_calls", "max_tokens", "content_filter", "other"]


@dataclass(frozen=True)
class ModelReply:
    """A model turn: final ``text``, or ``tool_calls`` to run before the next turn.

    ``usage`` counts tokens as ``input_tokens`` and ``output_tokens`` (a provider's own
    names mapped to these), absent when the provider reports none; ``cached_input_tokens``
    (when some) is the part of ``input_tokens`` read from the provider's prompt cache,
    which a price table may price apart (:mod:`kneo.spec.prices`)."""

    text: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    usage: dict[str, int] = field(default_factory=dict)
    stop_reason: StopReason | None = None

    def to_message(self) -> ChatMessage:
        return ChatMessage(role="assistant", content=self.text, tool_calls=self.tool_calls)


class Provider(Protocol):
    """A model backend. Raises :class:`kneo.errors.ProviderError` on failure after retries.

    ``reach`` is where the call's requests may go, every redirect hop included (the run's
    grant, :meth:`HostAccess.model_call <kneo.policy.access.HostAccess.model_call>`); a
    backend behind the network asks it through the kernel's client. ``None``: a caller's
    own in-process call, which stays on the model's endpoint."""

    name: str

    def complete(
        self,
        *,
        model: ModelSpec,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolDefinition],
        reach: NetworkGrant | None = None,
    ) -> ModelReply: ...
