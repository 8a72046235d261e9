"""Offline, deterministic stand-ins for the tools the example specs use.

They make every example runnable without network or credentials: ``web_search`` returns
canned results derived from the query, ``webpage_reader`` a canned page for the URL, and so
on. Each handler takes the tool-call arguments as a dict and returns a string. No I/O here
(the module must stay clean for the unsafe-import diagnostics).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

_WORD = re.compile(r"[A-Za-z0-9']+")


def _digest(text: str, n: int = 6) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:n]


def _slug(text: str) -> str:
    return "-".join(w.lower() for w in _WORD.findall(text)[:6]) or "topic"


def web_search(args: dict[str, Any]) -> str:
    """Three canned results for ``query`` (``max_results`` caps them, 1..5)."""
    query = str(args.get("query", "")).strip()
    if not query:
        return "error: query is required"
    limit = max(1, min(int(args.get("max_results", 3) or 3), 5))
    slug = _slug(query)
    lines = [
        f"{i}. {query} - overview {i} (https://example.com/{slug}/{_digest(query + str(i))})"
        for i in range(1, limit + 1)
    ]
    return "\n".join(lines)


def webpage_reader(args: dict[str, Any]) -> str:
    """A canned page body for ``url``: a title and a few sentences that mention it."""
    url = str(args.get("url", "")).strip()
    if not url.startswith(("http://", "https://")):
        return "error: url must start with http:// or https://"
    topic = url.rstrip("/").rsplit("/", 2)[-2 if url.count("/") > 3 else -1].replace("-", " ")
    return (
        f"Title: {topic.title()}\n"
        f"{topic.capitalize()} is growing quickly. Analysts highlight three drivers: demand, "
        f"supply and pricing. Source: {url}"
    )


def compress_history(args: dict[str, Any]) -> str:
    """Keep the first and last sentence of ``text`` and count what was dropped."""
    text = str(args.get("text", ""))
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if s.strip()]
    if len(sentences) <= 2:
        return text
    return f"{sentences[0]} [... {len(sentences) - 2} sentences compressed ...] {sentences[-1]}"


def summarize(args: dict[str, Any]) -> str:
    """The first ``max_words`` words of ``text`` (default 40) as a one-paragraph summary."""
    text = str(args.get("text", ""))
    max_words = max(1, int(args.get("max_words", 40) or 40))
    words = text.split()
    summary = " ".join(words[:max_words])
    return f"Summary: {summary}{' ...' if len(words) > max_words else ''}"


def publish_report(args: dict[str, Any]) -> str:
    """Pretend to publish ``report``; returns a stable URL derived from its content."""
    report = str(args.get("report", ""))
    if not report.strip():
        return "error: report is empty"
    return f"Published. https://reports.example.com/{_digest(report, 10)}"


def word_count(args: dict[str, Any]) -> str:
    """The number of words in ``text``."""
    return str(len(str(args.get("text", "")).split()))
