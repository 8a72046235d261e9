"""Checkpoint patches: a checkpoint row may hold only what changed since the previous one.

A patch is a JSON list of operations on the previous checkpoint's payload, each on a path of
object keys (lists are never indexed into):

* ``["s", path, value]`` sets the key at ``path``, adding it when absent (``null`` is a value);
* ``["d", path]`` deletes the key at ``path``;
* ``["a", path, items]`` appends ``items`` to the list at ``path``.

Not RFC 7386 merge patch: that cannot tell a ``null`` value from a deleted key, and it would
re-send a whole list when one item is appended (agent transcripts and ``order`` grow so).

:func:`diff` compares two *unredacted* states and emits *redacted* values such that folding
the patch onto the redacted previous payload gives exactly the redacted new payload. That holds
because :func:`kneo.redaction.redact` works per object key (a secret-looking key hides its whole
value, any other key's value is redacted on its own) and per list item, so each operation is
redacted with the rule of its own key and the unchanged rest of the state is never re-scanned.

Exactness is checked, not assumed: ``==`` cannot tell ``1`` from ``1.0`` or ``true``, so the
JSON length the patch predicts for the new state must equal the real one, or :func:`diff`
returns ``None`` and the caller stores a full snapshot (a keyframe) instead. Key order: kept
keys keep their place and new ones go last, as in the engine's state; a changed object whose
kept keys moved is sent whole, an unchanged one is not re-sent for a new key order alone (JSON
objects are unordered). Pure functions.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from functools import lru_cache
from itertools import islice
from typing import Any

from kneo import jsontext
from kneo.redaction import REDACTED, may_need_redaction, redact

SET = "s"
DELETE = "d"
APPEND = "a"

_ENC = jsontext.dumps
_DECODE = json.JSONDecoder().decode
_MISSING: Any = object()
_STR = frozenset({str})


class _Unordered(Exception):
    """The common keys of two objects are in a different order: replace the object whole."""


@lru_cache(maxsize=4096)
def _hides(key: str) -> bool:
    """Whether redaction hides the whole value under ``key`` (asked of :func:`redact` itself,
    so this never drifts from it)."""
    return bool(redact({key: [0]})[key] == REDACTED)


def _commas(count: int) -> int:
    return count - 1 if count > 1 else 0


def _op(kind: str, path: list[Any], value_text: str | None) -> str:
    if _STR.issuperset(map(type, path)):  # keys alone: each encoded by one C call
        head = f'["{kind}",[{",".join(map(jsontext.dumps_str, path))}]'
    else:
        head = f'["{kind}",{_ENC(path)}'
    return head + "]" if value_text is None else f"{head},{value_text}]"


def _redacted_text(value: object, text: str) -> str:
    """``value``'s JSON text after :func:`redact` (``text`` when nothing could change)."""
    return _ENC(redact(value)) if may_need_redaction(text) else text


def _walk(old: dict[str, Any], new: dict[str, Any], path: list[Any], ops: list[str]) -> int:
    """Append the operations turning ``old`` into ``new``; the change in JSON text length."""
    # Folding keeps the kept keys in place and adds new ones at the end, so that is the only
    # order a patch can express.
    kept = _kept(old, new)
    if kept is None:
        raise _Unordered
    items: Iterator[tuple[str, Any]]
    if len(kept) == len(old) and old.items() <= new.items():
        items = islice(new.items(), len(old), None)  # only keys added: skip the kept ones in C
    else:
        items = iter(new.items())
    change = _commas(len(new)) - _commas(len(old))
    added = 0
    for key, value in items:
        before = old.get(key, _MISSING)
        if before is _MISSING:
            added += 1
            text = _ENC(value)
            change += len(_ENC(key)) + 1 + len(text)
            if isinstance(key, str) and _hides(key):
                ops.append(_op(SET, [*path, key], _ENC(redact({key: value})[key])))
            else:
                ops.append(_op(SET, [*path, key], _redacted_text(value, text)))
            continue
        if type(before) is type(value) and before == value:
            continue
        where = [*path, key]
        if isinstance(key, str) and _hides(key):
            change += len(_ENC(value)) - len(_ENC(before))
            hidden = _ENC(redact({key: value})[key])
            if hidden != _ENC(redact({key: before})[key]):
                ops.append(_op(SET, where, hidden))
            continue
        if type(before) is dict and type(value) is dict:
            mark = len(ops)
            try:
                change += _walk(before, value, where, ops)
                continue
            except _Unordered:
                del ops[mark:]
        elif (
            type(before) is list
            and type(value) is list
            and len(value) > len(before)
            and value[: len(before)] == before
        ):
            tail = value[len(before) :]
            text = _ENC(tail)
            n_old, n_new = len(before), len(value)
            change += len(text) - 2 - _commas(len(tail)) + _commas(n_new) - _commas(n_old)
            ops.append(_op(APPEND, where, _redacted_text(tail, text)))
            continue
        text = _ENC(value)
        change += len(text) - len(_ENC(before))
        ops.append(_op(SET, where, _redacted_text(value, text)))
    if len(old) - (len(new) - added) > 0:
        for key, before in old.items():
            if key not in new:
                change -= len(_ENC(key)) + 1 + len(_ENC(before))
                ops.append(_op(DELETE, [*path, key], None))
    return change


def diff(
    old: dict[str, Any], new: dict[str, Any], *, old_length: int, new_length: int
) -> str | None:
    """The redacted patch (JSON text) from ``old`` to ``new``, whose compact JSON texts have
    ``old_length`` and ``new_length`` characters; ``None`` when a patch would not reproduce
    ``new`` exactly (the caller then stores a keyframe)."""
    ops: list[str] = []
    try:
        change = _walk(old, new, [], ops)
    except _Unordered:
        return None
    if old_length + change != new_length:
        return None
    return "[" + ",".join(ops) + "]"


def diff_texts(
    old: Mapping[str, str],
    new: Mapping[str, str],
    *,
    old_units: Mapping[str, str] | None = None,
    new_units: Mapping[str, str] | None = None,
) -> str | None:
    """:func:`diff` from the texts a state is made of: ``old``/``new`` map each top-level key
    to its value's JSON text, ``old_units``/``new_units`` each ``units`` member to its text.

    Unchanged values are found by comparing texts (no decode, no walk); a changed unit is
    sent whole, with its own text; another changed field is walked like :func:`diff` does.
    Folding the patch gives exactly the new texts' values, so no length check is needed
    except for the walked fields. ``None`` when a patch cannot express the change (then
    :func:`diff` decides)."""
    if _kept(old, new) is None:
        return None  # kept keys moved: only a keyframe shows that order
    ops: list[str] = []
    for name, text in new.items():
        before = old.get(name)
        if before == text:
            continue
        if _hides(name):
            return None
        if before is None:
            ops.append(_op(SET, [name], _redacted_json(text)))
        elif name == "units" and old_units is not None and new_units is not None:
            if not _member_ops(old_units, new_units, [name], ops):
                ops.append(_op(SET, [name], _redacted_json(text)))
        elif _appended(before, text):  # a list that grew (``order``): send the new items
            ops.append(_op(APPEND, [name], _redacted_json("[" + text[len(before) :])))
        else:
            mark = len(ops)
            try:
                change = _walk({name: _DECODE(before)}, {name: _DECODE(text)}, [], ops)
            except _Unordered:
                change = None
            if change != len(text) - len(before):
                del ops[mark:]
                ops.append(_op(SET, [name], _redacted_json(text)))
    for name in old:
        if name not in new:
            ops.append(_op(DELETE, [name], None))
    return "[" + ",".join(ops) + "]"


def _member_ops(
    old: Mapping[str, str], new: Mapping[str, str], path: list[Any], ops: list[str]
) -> bool:
    """Operations setting each changed member of an object whose members' texts are given;
    ``False`` (nothing appended) when its kept members moved."""
    kept = _kept(old, new)
    if kept is None:
        return False
    removed = len(kept) < len(old)
    for key, text in new.items():
        before = old.get(key)
        if before == text:
            continue
        if _hides(key):
            hidden = _ENC(redact({key: _DECODE(text)})[key])
            if before is None or hidden != _ENC(redact({key: _DECODE(before)})[key]):
                ops.append(_op(SET, [*path, key], hidden))
            continue
        ops.append(_op(SET, [*path, key], _redacted_json(text)))
    if removed:
        for key in old:
            if key not in new:
                ops.append(_op(DELETE, [*path, key], None))
    return True


def _kept(old: Mapping[Any, Any], new: Mapping[Any, Any]) -> list[Any] | None:
    """``old``'s keys that ``new`` still has, in order; ``None`` when ``new`` has them in
    another order (a patch only adds keys at the end)."""
    keys = list(old)
    if list(islice(new, len(keys))) == keys:  # usually keys were only added: one compare
        return keys
    kept = [k for k in keys if k in new]
    return kept if list(islice(new, len(kept))) == kept else None


def _appended(before: str, text: str) -> bool:
    """Whether JSON array ``text`` is non-empty array ``before`` with items appended: the
    old items' text followed by a comma. Old items parse the same inside the longer text
    (JSON is read left to right and the last old item ends where the comma starts)."""
    end = len(before) - 1
    return (
        before.startswith("[")
        and before.endswith("]")
        and end > 1
        and len(text) > end
        and text[end] == ","
        and text.startswith(before[:end])
    )


def _redacted_json(text: str) -> str:
    """The JSON text ``text`` after :func:`redact` of its value (``text`` when nothing could
    change)."""
    return _ENC(redact(_DECODE(text))) if may_need_redaction(text) else text


def apply(base: dict[str, Any], patch: list[Any]) -> dict[str, Any]:
    """``base`` with ``patch`` applied. ``base`` is left as it is: the containers on the
    patched paths are copied, everything else is shared with ``base``."""
    root = dict(base)
    copied = {id(root)}
    for op in patch:
        kind, path = op[0], op[1]
        parent = root
        for key in path[:-1]:
            child = parent[key]
            if id(child) not in copied:
                child = dict(child)
                parent[key] = child
                copied.add(id(child))
            parent = child
        last = path[-1]
        if kind == SET:
            parent[last] = op[2]
        elif kind == DELETE:
            del parent[last]
        elif kind == APPEND:
            items = parent[last]
            if id(items) not in copied:
                items = list(items)
                parent[last] = items
                copied.add(id(items))
            items.extend(op[2])
        else:
            raise ValueError(f"unknown checkpoint patch operation {kind!r}")
    return root
