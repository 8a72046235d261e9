"""The checkpoint patch format: exact round trip, key order, redaction of patched values."""

from __future__ import annotations

import json
import random
from typing import Any

from kneo.redaction import REDACTED, redact
from kneo.store.runs import delta


def _text(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _patch(old: dict[str, Any], new: dict[str, Any]) -> list[Any] | None:
    text = delta.diff(old, new, old_length=len(_text(old)), new_length=len(_text(new)))
    return None if text is None else json.loads(text)


def _fold(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    """The redacted fold's JSON text, or None when diff asks for a keyframe."""
    patch = _patch(old, new)
    return None if patch is None else _text(delta.apply(redact(old), patch))


def test_null_values_and_removed_keys_round_trip() -> None:
    """A key set to null stays (as null), a removed key goes, nested and at the top."""
    old = {"a": 1, "b": {"c": "x", "d": None}, "e": [1]}
    new = {"a": None, "b": {"d": None, "f": None}, "e": [1, None]}
    patch = _patch(old, new)
    assert patch is not None
    assert ["d", ["b", "c"]] in patch and ["s", ["a"], None] in patch
    assert ["a", ["e"], [None]] in patch  # appended, not the whole list again
    assert _text(delta.apply(old, patch)) == _text(new)


def test_apply_leaves_the_base_untouched() -> None:
    base = {"a": {"b": [1]}, "k": {"x": 1}}
    out = delta.apply(base, [["a", ["a", "b"], [2]], ["s", ["a", "c"], 3]])
    assert base == {"a": {"b": [1]}, "k": {"x": 1}}
    assert out == {"a": {"b": [1, 2], "c": 3}, "k": {"x": 1}} and out["k"] is base["k"]


def test_json_types_equal_in_python_are_told_apart() -> None:
    """1, 1.0 and true are == in Python but not the same JSON: never silently kept."""
    for before, after in ((1, True), (1, 1.0), (0, False), (0.0, -0.0)):
        old = {"deep": {"v": before}, "n": 1}
        new = {"deep": {"v": after}, "n": 1}
        assert _fold(old, new) in (None, _text(redact(new)))


def test_key_order_is_kept_or_a_keyframe_is_asked_for() -> None:
    old = {"a": 1, "b": 2}
    assert _fold(old, {"a": 1, "b": 2, "c": 3}) == '{"a":1,"b":2,"c":3}'
    assert _fold(old, {"b": 2, "a": 1}) is None  # only whole-object order changes
    # a changed object whose keys moved is replaced whole, in its new order
    assert _fold({"o": old, "x": 1}, {"o": {"b": 3, "a": 1}, "x": 1}) == '{"o":{"b":3,"a":1},"x":1}'


def test_patched_values_are_redacted_by_their_key() -> None:
    """A secret under a secret-looking key is hidden whole; inline secrets in other values
    are scrubbed; nothing secret reaches the patch text."""
    old = {"cfg": {"name": "x"}, "log": ["start"]}
    new = {
        "cfg": {"name": "x", "api_key": "sk-live-abcdefghijklmnop", "password": {"v": "hunter2"}},
        "log": ["start", "Authorization: Bearer abcdefghijklmnop", {"token": "tok-12345678"}],
        "token": "sk-abcdefghijklmnop1",
    }
    text = delta.diff(old, new, old_length=len(_text(old)), new_length=len(_text(new)))
    assert text is not None
    for secret in ("sk-live", "hunter2", "abcdefghijklmnop", "tok-12345678"):
        assert secret not in text
    assert _text(delta.apply(redact(old), json.loads(text))) == _text(redact(new))
    assert json.loads(text) and REDACTED in text


def test_a_secret_change_under_a_secret_key_writes_nothing() -> None:
    """Redacted before and after are the same: the patch is empty, the fold still exact."""
    old = {"auth": {"api_key": "sk-aaaaaaaaaaaaaaaa"}}
    new = {"auth": {"api_key": "sk-bbbbbbbbbbbbbbbbbbbb"}}
    assert _patch(old, new) == []
    assert _fold(old, new) == _text(redact(new))


_KEYS = ["a", "b", "api_key", "token_count", "password", "units", "msg", "secrets", "n"]
_LEAVES: list[Any] = [None, True, False, 0, 1, 1.0, 0.0, -0.0, "", "hi", "sk-abcdefghijk12"]
_LEAVES += ["me@example.org", 7, [], {}]


def _value(rng: random.Random, depth: int) -> Any:
    roll = rng.random()
    if depth > 3 or roll < 0.3:
        return rng.choice(_LEAVES)
    if roll < 0.55:
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(_KEYS): _value(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def _mutate(rng: random.Random, value: Any, depth: int) -> Any:
    if isinstance(value, dict):
        out = dict(value)
        for _ in range(rng.randint(0, 3)):
            key, roll = rng.choice(_KEYS), rng.random()
            if roll < 0.3 and out:
                out.pop(rng.choice(list(out)))
            elif roll < 0.6 and key in out:
                out[key] = _mutate(rng, out[key], depth + 1)
            else:
                out[key] = _value(rng, depth + 1)
        return out
    if isinstance(value, list):
        items = list(value)
        if rng.random() < 0.5:
            items.extend(_value(rng, depth + 1) for _ in range(rng.randint(1, 2)))
        elif items:
            items[rng.randrange(len(items))] = _value(rng, depth + 1)
        return items
    return _value(rng, depth)


def test_randomized_fold_equals_the_redacted_state() -> None:
    """Folding the redacted patch onto the redacted old state is the redacted new state, as
    JSON text, for random states with secrets, nulls, removals and look-alike numbers."""
    rng = random.Random(20261121)
    patched = 0
    for _ in range(3000):
        old = {"root": _value(rng, 0), **{k: _value(rng, 1) for k in rng.sample(_KEYS, 4)}}
        new = _mutate(rng, old, 0)
        folded = _fold(old, new)
        if folded is not None:
            patched += 1
            assert folded == _text(redact(new)), (old, new)
    assert patched > 2500  # keyframes are the exception
