"""Stub helpers for ``research_agent.yaml``: deterministic, offline, no side effects.

Function steps receive the previous step's output text and return a string. The tool-style
helpers (``web_search``, ``webpage_reader``, ``compress_history``) take the tool-call
arguments as a dict, like any registered tool handler; ship-quality replacements would call
real services.
"""

from __future__ import annotations

from typing import Any

from kneo.tools import examples as _tools


def _text(value: Any) -> str:
    """Accept the previous output as text, or a mapping carrying it."""
    if isinstance(value, dict):
        for key in ("text", "input", "output", "content"):
            if key in value:
                return str(value[key])
        return str(value)
    return "" if value is None else str(value)


def web_search(args: dict[str, Any]) -> str:
    """Canned search results for ``args["query"]``."""
    return _tools.web_search(args)


def webpage_reader(args: dict[str, Any]) -> str:
    """A canned page body for ``args["url"]``."""
    return _tools.webpage_reader(args)


def compress_history(args: dict[str, Any]) -> str:
    """Keep the first and last sentence of ``args["text"]``."""
    return _tools.compress_history(args)


def summarize(text: Any) -> str:
    """Function step: a short bullet summary of the analysis (first three sentences)."""
    body = _text(text).replace("\n", " ")
    sentences = [s.strip() for s in body.split(". ") if s.strip()][:3]
    bullets = "\n".join(f"- {s.rstrip('.')}." for s in sentences) or "- (nothing to summarize)"
    return f"Summary:\n{bullets}"
