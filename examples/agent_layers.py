"""Middleware functions for ``agent_skills.yaml``: deterministic, offline, no side effects.

A ``guardrail`` function takes the text and returns a reason to block it (or ``None``); a
``tool_policy`` function takes the tool name and its arguments and returns a reason to refuse
the call (or ``None``). Kneo reaches them only through the trust kernel, with the run's grant.
"""

from __future__ import annotations

from typing import Any

_OFF_TOPIC = ("password", "credit card")


def off_topic(text: str) -> str | None:
    """Block requests about credentials or payment data."""
    lowered = text.lower()
    for phrase in _OFF_TOPIC:
        if phrase in lowered:
            return f"requests about {phrase}s are out of scope"
    return None


def short_texts_only(tool: str, arguments: dict[str, Any]) -> str | None:
    """Refuse a word count over more than 2,000 characters."""
    if tool == "word_count" and len(str(arguments.get("text", ""))) > 2000:
        return "the text is longer than 2,000 characters"
    return None
