"""Functions and tools for the ``hitl_*.yaml`` examples (offline, deterministic).

``publish`` and ``send_email`` count their calls in the file named by ``KNEO_HITL_COUNTER``
(when set), so tests in other processes can prove a step after a pause ran exactly once.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from examples.hitl_counter import count as _count


def draft(text: str) -> str:
    """A first draft of the request."""
    return f"DRAFT: {text.strip() or 'untitled'}"


def publish(text: str) -> str:
    """Publish (counted): returns a stable URL for the text."""
    _count("publish")
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:10]
    return f"Published. https://reports.example.com/{digest}"


def process(text: str, context: Any) -> str:
    """Process with the parameters a person provided (``human_review.input_schema``)."""
    values = dict(context.human_input or {})
    return f"Processed {text!r} with {json.dumps(values, sort_keys=True)}"


def summarize(text: str, context: Any) -> str:
    """A summary; a reviewer's feedback (``review_output``) shapes the next round."""
    feedback = context.review_feedback
    return f"SUMMARY of {text!r}" + (f" (revised: {feedback})" if feedback else "")


def fragile(text: str, context: Any) -> str:
    """Fails on its first attempt, succeeds after (``on_error: pause`` example)."""
    if context.attempt == 1:
        raise RuntimeError("upstream service unavailable")
    return f"fetched {text!r} on attempt {context.attempt}"


def send_email(args: dict[str, Any]) -> str:
    """Tool: 'send' an e-mail (counted)."""
    _count("send_email")
    return f"sent to {args.get('to')}: {args.get('subject')}"


def lookup_on_call(args: dict[str, Any]) -> str:
    """Tool: who is on call for a topic (the release team, always)."""
    return f"the release team (team@example.com) is on call for {args.get('topic')!r}"


def improve(text: str) -> str:
    """One revision per loop iteration (``review_iterations``): ``DRAFT: x [rev n]``."""
    base, _, rev = text.partition(" [rev ")
    number = int(rev.rstrip("]")) + 1 if rev.rstrip("]").isdigit() else 1
    return f"{base} [rev {number}]"
