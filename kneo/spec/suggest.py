""" "Did you mean ...?" for an unknown field or enum value in a spec or the project config.

Two sources: spelling (``difflib`` against the names the model accepts at that place) and the
vocabulary of other frameworks' human-in-the-loop documents, which readers write from memory
(``on_timeout: approve``, ``confirmation_message``). Pure: a model class, a location and a
word in; a hint out.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel

from kneo.errors import InvalidRequest

#: Field names readers bring from other frameworks -> the field Kneo calls it.
FIELD_SYNONYMS: dict[str, str] = {
    "confirmation_message": "message",
    "user_input_message": "input_message",
    "user_input_schema": "input_schema",
    "requires_user_input": "input_schema",
    "timeout": "timeout_seconds",
    "field_type": "type",
    "requires_output_review": "review_output",
    "instructions": "system_prompt",
}

#: Enum values readers bring along, by field: value -> (Kneo's value, what it does here).
VALUE_SYNONYMS: dict[str, dict[str, tuple[str, str]]] = {
    "on_timeout": {
        "approve": ("continue", "approves the request when it times out and goes on"),
        "cancel": ("fail", "ends the run as expired; no timeout cancels a run here"),
        "deny": ("reject", "rejects the request when it times out"),
    },
    "on_reject": {
        "else_branch": ("skip", "skips the step; route with a graph to branch instead"),
        "stop": ("cancel", "cancels the run"),
    },
}


def close_match(word: str, choices: Iterable[str]) -> str | None:
    """The one choice ``word`` most likely misspells, if any is close enough."""
    import difflib  # here: every process imports this module, few ever misspell

    found = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return found[0] if found else None


def guess_suffix(word: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for a likely misspelling, else ``""``."""
    guess = close_match(word, choices)
    return f"; did you mean '{guess}'?" if guess else ""


def one_of(value: str | None, choices: Sequence[str], field: str) -> None:
    """Refuse a filter or option value outside ``choices``, naming them and the likely one:
    a misspelt filter would otherwise match nothing and look like an empty result."""
    if value is None or value in choices:
        return

    raise InvalidRequest(
        f"{field} must be one of {', '.join(choices)}, got {value!r}{guess_suffix(value, choices)}",
        field=field,
    )


def unknown_field_hint(model: type[BaseModel] | None, loc: Sequence[Any]) -> str | None:
    """For an unknown field at ``loc`` (its last part is the name): the field meant."""
    if not loc or not isinstance(loc[-1], str):
        return None
    name = loc[-1]
    fields = fields_at(model, loc[:-1])
    if not fields:
        return None
    synonym = FIELD_SYNONYMS.get(name)
    if synonym in fields:
        return f"did you mean '{synonym}'? (Kneo's name for {name})"
    guess = close_match(name, fields)
    return f"did you mean '{guess}'?" if guess else None


def enum_value_hint(field: str | None, value: object, expected: str) -> str | None:
    """For a value outside an enum (pydantic's ``expected`` text lists the choices)."""
    if not isinstance(value, str):
        return None
    choices = re.findall(r"'([^']*)'", expected)
    known = VALUE_SYNONYMS.get(field or "", {}).get(value)
    if known is not None and known[0] in choices:
        return f"did you mean '{known[0]}'? (here, '{known[0]}' {known[1]})"
    guess = close_match(value, choices)
    return f"did you mean '{guess}'?" if guess else None


def fields_at(model: type[BaseModel] | None, loc: Sequence[Any]) -> list[str]:
    """The field names (and aliases) of the model found by walking ``loc`` from ``model``:
    through fields, list indexes and dict keys; empty when the walk leaves the models."""
    current: Any = model
    for part in loc:
        current = _step(current, part)
        if current is None:
            return []
    found = [m for m in _unwrapped(current) if isinstance(m, type) and issubclass(m, BaseModel)]
    if not found:
        return []
    current = found[0]
    names: list[str] = []
    for name, info in current.model_fields.items():
        names.append(name)
        if info.alias:
            names.append(info.alias)
    return names


def _step(annotation: Any, part: Any) -> Any:
    """The annotation one location part further in, or ``None``."""
    for candidate in _unwrapped(annotation):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            if isinstance(part, str):
                info = candidate.model_fields.get(part) or next(
                    (f for f in candidate.model_fields.values() if f.alias == part), None
                )
                if info is not None:
                    return info.annotation
            continue
        origin = typing.get_origin(candidate)
        args = typing.get_args(candidate)
        if origin in (list, tuple, Sequence) and isinstance(part, int) and args:
            return args[0]
        if origin is dict and isinstance(part, str) and len(args) == 2:
            return args[1]
    return None


def _unwrapped(annotation: Any) -> list[Any]:
    """The members of an ``X | Y`` / ``Optional`` / ``Annotated`` annotation."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrapped(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [m for a in typing.get_args(annotation) for m in _unwrapped(a)]
    return [annotation]
