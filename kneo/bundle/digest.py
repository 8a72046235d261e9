"""Canonical encoding and digests: RFC 8785 (JSON Canonicalization Scheme) via ``rfc8785``.

Two rules, documented in ``docs/bundles.md`` so any tool can reproduce them:

* ``digest = "sha256:" + hex(sha256(JCS(spec)))`` where ``spec`` is the bundle's ``spec``
  object exactly as it appears in the bundle JSON.
* A signature covers ``JCS(bundle_without_signatures)``: the whole bundle JSON object with
  its ``signatures`` member removed, nothing else changed.

JCS sorts object members by UTF-16 code units, writes strings as minimal UTF-8 with only the
mandatory escapes, and numbers in ECMAScript's shortest round-trip form (``1.0`` -> ``1``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import rfc8785

from kneo.bundle.format import Bundle
from kneo.errors import BundleError

DIGEST_PREFIX = "sha256:"


def canonical_json(value: Any) -> bytes:
    """The RFC 8785 encoding of a JSON-compatible value.

    Values JSON cannot represent exactly (integers beyond +-2**53, NaN, infinities, non-string
    keys) are refused rather than silently rounded, so a digest never depends on a lossy step.
    """
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise BundleError(
            f"value cannot be canonicalized as JSON (RFC 8785): {exc}", code="bundle_malformed"
        ) from exc


def sha256_digest(data: bytes) -> str:
    """``sha256:<lowercase hex>`` of ``data``."""
    return DIGEST_PREFIX + hashlib.sha256(data).hexdigest()


def spec_digest(spec: Mapping[str, Any]) -> str:
    """The bundle digest of a resolved spec: ``sha256:<hex>`` over its canonical JSON."""
    return sha256_digest(canonical_json(spec))


def signing_payload(bundle: Bundle | Mapping[str, Any]) -> bytes:
    """The bytes every signature covers: the canonical bundle minus its ``signatures``.

    Pass the parsed JSON object when verifying a document read from disk, so the payload is
    exactly what was signed (no defaults filled in by a model); a :class:`Bundle` is dumped
    with :meth:`Bundle.to_document` first.
    """
    document = bundle.to_document() if isinstance(bundle, Bundle) else dict(bundle)
    document.pop("signatures", None)
    return canonical_json(document)
