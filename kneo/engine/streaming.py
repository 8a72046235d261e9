"""An agent's answer as it is generated (``model.stream: true``): ``answer_delta`` trace
events, streamed on the run's events as the opt-in type ``answer.delta``.

Each delta is text of the answer *as the final answer is shown*: redacted
(:func:`kneo.redaction.redact_text`) the same way. A secret must never leave half-written, so
text is released only up to its last whitespace, redacted as a whole prefix; a delta is what
that redacted prefix adds to what was sent. The turn's last delta (``done: true``) makes the
joined deltas equal the final answer after the agent's output middleware and redaction; when
those changed text already sent, it carries the whole answer with ``replace: true`` instead.
A turn that ends in tool calls closes its deltas with ``done: true, final: false`` (the text
was not the answer).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kneo.redaction import redact_text

__all__ = ["AnswerStream"]

#: Fewer new characters than this wait for more (fewer, larger events).
_MIN_DELTA = 24


class AnswerStream:
    """The deltas of one model turn's text."""

    def __init__(self, emit: Callable[[dict[str, Any]], None], **fields: object) -> None:
        self._emit = emit
        self._fields = fields
        self._raw = ""
        self.sent = ""

    def feed(self, delta: str) -> None:
        """Text the model just generated."""
        self._raw += delta
        cut = max(self._raw.rfind(" "), self._raw.rfind("\n"))
        if cut <= 0:
            return
        shown = redact_text(self._raw[: cut + 1])
        if shown.startswith(self.sent) and len(shown) - len(self.sent) >= _MIN_DELTA:
            self._send({"text": shown[len(self.sent) :]})
            self.sent = shown

    def finish(self, answer: str | None) -> None:
        """The turn ended: ``answer`` is its final answer as shown (``None``: the turn was
        not the answer)."""
        if answer is None:
            if self.sent or self._raw:
                self._send({"text": "", "done": True, "final": False})
            return
        shown = redact_text(answer)
        if shown.startswith(self.sent):
            self._send({"text": shown[len(self.sent) :], "done": True, "final": True})
        else:
            self._send({"text": shown, "done": True, "final": True, "replace": True})
        self.sent = shown

    def _send(self, data: dict[str, Any]) -> None:
        self._emit({**self._fields, **data})
