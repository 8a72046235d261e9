"""The safe condition language of graph edges, evaluated over the previous step's output.

No expressions are evaluated: a condition is one of ``contains``, ``not_contains``,
``equals``, ``regex`` (``re.search``, length-capped) or ``predicate`` — the name of a Python
function registered with :func:`register_predicate`. Pure functions, no I/O.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from functools import lru_cache

from kneo.errors import ErrorCode, KneoError
from kneo.spec.models import EdgeCondition

Predicate = Callable[[str], bool]

_MAX_REGEX_INPUT = 100_000
_predicates: dict[str, Predicate] = {}
_lock = threading.Lock()


def register_predicate(name: str, fn: Predicate) -> None:
    """Make ``fn(output_text) -> bool`` usable as ``condition: {predicate: name}``."""
    if not name or not callable(fn):
        raise ValueError("a predicate needs a name and a callable")
    with _lock:
        _predicates[name] = fn


def unregister_predicate(name: str) -> None:
    with _lock:
        _predicates.pop(name, None)


def registered_predicates() -> list[str]:
    with _lock:
        return sorted(_predicates)


@lru_cache(maxsize=256)
def _compiled(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE if ignore_case else 0)


def evaluate(condition: EdgeCondition, output: str) -> bool:
    """Whether ``condition`` holds for ``output``; an unknown predicate is a KneoError."""
    text = output or ""
    fold = condition.ignore_case

    def norm(value: str) -> str:
        return value.casefold() if fold else value

    if condition.contains is not None:
        return norm(condition.contains) in norm(text)
    if condition.not_contains is not None:
        return norm(condition.not_contains) not in norm(text)
    if condition.equals is not None:
        return norm(condition.equals.strip()) == norm(text.strip())
    if condition.regex is not None:
        try:
            pattern = _compiled(condition.regex, fold)
        except re.error as exc:
            raise KneoError(
                f"edge regex {condition.regex!r} is invalid: {exc}",
                code=ErrorCode.invalid_condition,
            ) from exc
        return pattern.search(text[:_MAX_REGEX_INPUT]) is not None
    name = condition.predicate or ""
    with _lock:
        fn = _predicates.get(name)
    if fn is None:
        raise KneoError(
            f"edge predicate {name!r} is not registered; call "
            "kneo.engine.conditions.register_predicate first",
            code=ErrorCode.unknown_predicate,
        )
    return bool(fn(text))
