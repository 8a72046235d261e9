"""Stub functions for ``human_approval_workflow.yaml``: draft, then publish after approval.

Each receives the previous step's output text and returns a string; deterministic and
offline so the pause/resume walkthrough needs no credentials.
"""

from __future__ import annotations

import hashlib
from typing import Any


def _text(value: Any) -> str:
    if isinstance(value, dict):
        for key in ("text", "input", "output", "content"):
            if key in value:
                return str(value[key])
        return str(value)
    return "" if value is None else str(value)


def draft_report(text: Any) -> str:
    """Turn the request into a short draft for a reviewer."""
    topic = _text(text).strip() or "untitled"
    return (
        f"DRAFT: {topic}\n\n"
        f"We are pleased to announce {topic}. This draft awaits review before publishing."
    )


def publish_report(text: Any) -> str:
    """Pretend to publish the approved (or edited) draft; returns a stable URL."""
    body = _text(text)
    digest = hashlib.sha256(body.encode("utf-8")).hexdigest()[:10]
    return f"Published. https://reports.example.com/{digest}"
