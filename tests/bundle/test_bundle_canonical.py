"""The fast canonical encoder is byte-identical to the ``rfc8785`` reference (property test)."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest
import rfc8785

from kneo.bundle.digest import canonical_json, signing_payload

ALPHABET = [chr(c) for c in range(0x00, 0x80)] + [
    "\u00e9",
    "\u2028",
    "\u2029",
    "\u007f",
    "\ufeff",
    "\uffff",
    "\ue000",
    "\U0001f600",
    "\u4e2d",
]
FLOATS = [
    0.0,
    -0.0,
    1.0,
    -1.0,
    0.5,
    0.1,
    0.2,
    1 / 3,
    1e-4,
    9.99e-5,
    1e-7,
    123.456,
    1e15 + 0.5,
    1e16,
    1e20,
    1e21,
    2.0**53,
    2.0**53 - 1,
    5e-324,
    1.7976931348623157e308,
    -273.15,
]
INTS = [0, 1, -1, 42, 2**31, 2**53 - 1, -(2**53 - 1)]


def _string(rng: random.Random) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 8)))


def _value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 3 or roll < 0.45:
        makers: list[Callable[[], Any]] = [
            lambda: _string(rng),
            lambda: rng.choice(FLOATS),
            lambda: rng.choice(FLOATS) * rng.choice([1, -1]),
            lambda: rng.choice(INTS),
            lambda: rng.uniform(-1e6, 1e6),
            lambda: rng.choice([True, False, None]),
        ]
        return rng.choice(makers)()
    if roll < 0.7:
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {_string(rng): _value(rng, depth + 1) for _ in range(rng.randint(0, 5))}


@pytest.mark.parametrize("seed", range(4))
def test_fast_path_matches_the_reference_encoder(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(1000):
        value = _value(rng)
        assert canonical_json(value) == rfc8785.dumps(value), value


def test_typical_spec_keys_with_non_ascii_still_match() -> None:
    value: dict[str, Any] = {
        "\U0001f600": 1,
        "\ue000": 2,
        "a": "\u2028\x00\x1f\x7f",
        "é": [1.5, 2.0],
    }
    assert canonical_json(value) == rfc8785.dumps(value)


def test_composed_payload_equals_encoding_the_whole_document() -> None:
    rng = random.Random(7)
    for _ in range(200):
        spec = _value(rng)
        document = {
            "kind": "KneoSpecBundle",
            "spec": spec,
            "digest": "x",
            "signatures": [{"alg": "ed25519"}],
            "approved_by": _string(rng),
        }
        composed = signing_payload(document, canonical_spec=canonical_json(spec))
        assert (
            composed
            == signing_payload(document)
            == rfc8785.dumps({k: v for k, v in document.items() if k != "signatures"})
        )
