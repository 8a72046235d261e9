"""Checkpoint payload encoding: compression at a threshold, a bounded preview above the cap.

Pure functions (no database), so both backends store byte-for-byte the same thing. Limits
come from :class:`~kneo.setting_groups.CheckpointLimits` (``KNEO_SERV_CHECKPOINT_*``).
"""

from __future__ import annotations

import json
import zlib
from typing import Any, NamedTuple

from kneo import jsontext
from kneo.errors import ErrorCode, InvalidRequest
from kneo.setting_groups import CheckpointLimits

ENCODING_JSON = "json"
ENCODING_ZLIB = "zlib+json"
#: a patch on the previous checkpoint's payload (see :mod:`kneo.store.runs.delta`)
ENCODING_DELTA = "delta"
ENCODING_ZLIB_DELTA = "zlib+delta"
#: encodings of rows holding a whole payload (keyframes), as opposed to a patch
KEYFRAME_ENCODINGS = (ENCODING_JSON, ENCODING_ZLIB)
_MAX_PREVIEW_DEPTH = 6


class EncodedPayload(NamedTuple):
    """What goes into the ``checkpoints`` row."""

    encoding: str
    data: bytes
    size_bytes: int
    truncated: bool
    reduction: dict[str, Any] | None


def dumps(value: object) -> bytes:
    """Compact JSON bytes; a value that is not JSON is an ``invalid_payload`` error."""
    try:
        return jsontext.dumps(value).encode()
    except (TypeError, ValueError) as exc:
        raise InvalidRequest(
            f"checkpoint payload is not JSON: {exc}", code=ErrorCode.invalid_payload
        ) from exc


def encode(
    payload: dict[str, Any], limits: CheckpointLimits, *, raw: bytes | None = None
) -> EncodedPayload:
    """Encode ``payload``: zlib at or above ``compress_bytes``; a preview if still > ``max_bytes``.

    ``raw`` is ``dumps(payload)`` when the caller already has it (the step-boundary path
    serializes the state once for the run row and the checkpoint).
    """
    if raw is None:
        raw = dumps(payload)
    data, encoding = _maybe_compress(raw, limits)
    if len(data) <= limits.max_bytes:
        return EncodedPayload(encoding, data, len(raw), False, None)
    preview = bounded_preview(payload, limits)
    preview_raw = dumps(preview)
    preview_data, preview_encoding = _maybe_compress(preview_raw, limits)
    if len(preview_data) > limits.max_bytes:
        # Pathological nesting: fall back to a prefix of the JSON text itself.
        preview = {"_preview": raw[: limits.preview_chars].decode(errors="ignore")}
        preview_raw = dumps(preview)
        preview_data, preview_encoding = _maybe_compress(preview_raw, limits)
    reduction = {
        "reason": "checkpoint_max_bytes",
        "original_bytes": len(raw),
        "compressed_bytes": len(data) if encoding == ENCODING_ZLIB else None,
        "stored_bytes": len(preview_data),
        "max_bytes": limits.max_bytes,
        "preview_chars": limits.preview_chars,
        "max_list_items": limits.max_list_items,
        "max_dict_items": limits.max_dict_items,
    }
    return EncodedPayload(preview_encoding, preview_data, len(preview_raw), True, reduction)


def encode_patch(raw: bytes, limits: CheckpointLimits) -> EncodedPayload | None:
    """A patch's row encoding (zlib at ``compress_bytes``); ``None`` above ``max_bytes``,
    where the caller stores a keyframe (which may become a preview) instead."""
    data, encoding = _maybe_compress(raw, limits)
    if len(data) > limits.max_bytes:
        return None
    encoding = ENCODING_ZLIB_DELTA if encoding == ENCODING_ZLIB else ENCODING_DELTA
    return EncodedPayload(encoding, data, len(raw), False, None)


def is_patch(encoding: str) -> bool:
    """Whether a row with ``encoding`` holds a patch rather than a whole payload."""
    return encoding in (ENCODING_DELTA, ENCODING_ZLIB_DELTA)


def is_compressed(encoding: str) -> bool:
    return encoding in (ENCODING_ZLIB, ENCODING_ZLIB_DELTA)


def decode(encoding: str, data: bytes) -> dict[str, Any]:
    """A keyframe's stored payload back as a dict."""
    if encoding == ENCODING_ZLIB:
        data = zlib.decompress(data)
    value = json.loads(data)
    return value if isinstance(value, dict) else {"value": value}


def decode_patch(encoding: str, data: bytes) -> list[Any]:
    """A patch row's operations (see :mod:`kneo.store.runs.delta`)."""
    if encoding == ENCODING_ZLIB_DELTA:
        data = zlib.decompress(data)
    ops: list[Any] = json.loads(data)
    return ops


def _maybe_compress(raw: bytes, limits: CheckpointLimits) -> tuple[bytes, str]:
    if limits.compress_bytes and len(raw) >= limits.compress_bytes:
        return zlib.compress(raw, 6), ENCODING_ZLIB
    return raw, ENCODING_JSON


def bounded_preview(value: object, limits: CheckpointLimits, depth: int = 0) -> Any:
    """A copy of ``value`` with long strings, lists and dicts cut to the preview limits.

    Cut containers say how much was dropped (``"... N more"`` markers) so a reader knows the
    preview is partial.
    """
    if isinstance(value, str):
        if len(value) > limits.preview_chars:
            return (
                value[: limits.preview_chars]
                + f"... [{len(value) - limits.preview_chars} chars truncated]"
            )
        return value
    if depth >= _MAX_PREVIEW_DEPTH and isinstance(value, dict | list | tuple):
        return f"[{type(value).__name__} truncated at depth {depth}]"
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for index, (key, item) in enumerate(value.items()):
            if index >= limits.max_dict_items:
                out["_truncated_keys"] = len(value) - limits.max_dict_items
                break
            out[str(key)] = bounded_preview(item, limits, depth + 1)
        return out
    if isinstance(value, list | tuple):
        items = [
            bounded_preview(item, limits, depth + 1) for item in value[: limits.max_list_items]
        ]
        if len(value) > limits.max_list_items:
            items.append(f"... {len(value) - limits.max_list_items} more items")
        return items
    return value
