"""kneo.jsontext.dumps is json's compact encoder, byte for byte, without its set-up cost."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import pytest

from kneo import jsontext

REFERENCE = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, default=jsontext.default
).encode

VALUES: list[Any] = [
    "plain",
    'quotes " and \\ and \n and \u2028 and ü and 😀',
    "",
    0,
    -12,
    2**70,
    1.5,
    1e-300,
    math.inf,
    -math.inf,
    True,
    None,
    [],
    {},
    (1, "two"),
    {"nested": {"list": [1, 2.25, None, {"ü": "x"}], "empty": []}, "n": 3},
    {3: "int key", 1.5: "float key", None: "null key", True: "bool key"},
    {"at": datetime(2026, 11, 21, 17, 46, 14, 5, tzinfo=UTC), "tags": frozenset({"a"})},
]


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
def test_dumps_is_the_reference_encoding(value: Any) -> None:
    assert jsontext.dumps(value) == REFERENCE(value)


def test_nan_is_encoded_like_json() -> None:
    assert jsontext.dumps([math.nan]) == REFERENCE([math.nan]) == "[NaN]"


def test_what_is_not_json_is_refused_as_json_refuses_it() -> None:
    with pytest.raises(TypeError, match="object is not JSON serializable"):
        jsontext.dumps({"x": object()})
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular reference"):
        jsontext.dumps(loop)


def test_content_hash_ignores_key_order_and_hashes_what_json_cannot_type() -> None:
    from datetime import datetime

    from kneo.jsontext import content_hash

    assert content_hash({"b": 1, "a": [1, 2]}) == content_hash({"a": [1, 2], "b": 1})
    assert content_hash({"a": 1}) != content_hash({"a": 2})
    assert content_hash([{"a": 1}]) != content_hash({"a": 1})
    big = {"n": 2**70, "when": datetime(2026, 1, 1)}  # outside RFC 8785's domain: still hashed
    assert len(content_hash(big)) == 64
