"""Functions the original-dialect example spec names."""

from __future__ import annotations


def word_count(text: str) -> str:
    return str(len(text.split()))


def tidy(text: str) -> str:
    return text.strip().upper()
