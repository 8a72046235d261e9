"""Compact JSON text: the one encoding Kneo stores, compares and patches (execution state,
checkpoints, trace payloads, JSON columns).

:func:`dumps` is ``json.JSONEncoder(separators=(",", ":"), ensure_ascii=False,
default=default).encode`` without its per-call set-up: ``encode`` builds a float-formatting
closure and a new C encoder on every call, which cost more than encoding most of the small
values a run writes (some fifty per run). The output is the same, byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import json.encoder
from collections.abc import Callable
from datetime import datetime
from typing import Any


def default(value: object) -> Any:
    """What JSON has no type for: timestamps as ISO text, sets and tuples as lists."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


#: :func:`dumps` of a value whose type is exactly ``str``, a C function (no Python frame)
dumps_str: Callable[[str], str] = json.encoder.encode_basestring
_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)  # untyped in typeshed
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=default).encode


def dumps(value: object) -> str:
    """Compact JSON text of ``value`` (``TypeError``/``ValueError`` when it is not JSON)."""
    if type(value) is str:
        return dumps_str(value)
    if _make_encoder is None:  # an interpreter without the C accelerator
        return _encode(value)
    # A fresh ``markers`` dict per call, as ``encode`` makes: circular references are
    # reported (ValueError), and concurrent calls never share one.
    chunks = _make_encoder({}, default, dumps_str, None, ":", ",", False, False, True)(value, 0)
    return "".join(chunks)


def content_hash(value: object) -> str:
    """sha256 (hex) of ``value``'s canonical text (sorted keys, compact, anything JSON has no
    type for as its ``str``): the one hash of requests bound to idempotency keys and of
    specs' content. Signed bundles use RFC 8785 instead (:mod:`kneo.bundle.digest`), a
    standard other tools reproduce, which refuses values this must still hash (integers
    beyond 2**53, non-finite floats)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
