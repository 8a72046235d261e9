"""A tool for the streaming tests."""

from __future__ import annotations


def word_count(text: str) -> str:
    return str(len(text.split()))
