"""Pure helpers for looking back at a run: flattened checkpoint diffs and replay timelines."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kneo.redaction import redact as _redact_any


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": [1]}}`` → ``{"a.b[0]": 1}``; empty containers are leaves."""
    out: dict[str, Any] = {}
    if isinstance(value, Mapping) and value:
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(value, list | tuple) and value:
        for index, item in enumerate(value):
            out.update(flatten(item, f"{prefix}[{index}]"))
    else:
        out[prefix or "<root>"] = value
    return out


def diff(before: Any, after: Any) -> dict[str, Any]:
    """Added, removed and changed flattened paths between two JSON values (redacted)."""
    a, b = flatten(before), flatten(after)
    return redact_dict(
        {
            "added": {k: b[k] for k in b if k not in a},
            "removed": {k: a[k] for k in a if k not in b},
            "changed": {k: {"from": a[k], "to": b[k]} for k in a if k in b and a[k] != b[k]},
        }
    )


def timeline_entry(cp: Any) -> dict[str, Any]:
    """One replay row from a checkpoint record: no payload bodies, just where and how."""
    payload = cp.payload or {}
    meta = cp.metadata or {}
    pending = payload.get("pending") or []
    error = payload.get("error")
    return redact_dict(
        {
            "sequence": cp.sequence,
            "type": cp.type,
            "step_id": cp.step_id,
            "node_id": meta.get("node_id"),
            "unit_key": meta.get("unit_key"),
            "attempt": meta.get("attempt"),
            "status": cp.status,
            "position": payload.get("position") or {},
            "pending_human_request_id": pending[0].get("request_id") if pending else None,
            "error": {"code": error.get("code"), "message": error.get("message")}
            if error
            else None,
            "created_at": cp.created_at.isoformat() if cp.created_at else None,
        }
    )


def completed_units(state: Mapping[str, Any]) -> list[dict[str, Any]]:
    units = state.get("units") or {}
    rows: list[dict[str, Any]] = []
    for key in state.get("order") or []:
        unit = units.get(key)
        if unit is not None:
            rows.append(
                {
                    "unit_key": key,
                    "step_id": unit.get("step_id"),
                    "status": unit.get("status"),
                    "attempts": unit.get("attempts"),
                }
            )
    return rows


def failed_unit(state: Mapping[str, Any]) -> dict[str, Any] | None:
    for key, unit in (state.get("units") or {}).items():
        if unit.get("status") in ("failed", "retrying"):
            return {
                "unit_key": key,
                "step_id": unit.get("step_id"),
                "status": unit.get("status"),
                "attempts": unit.get("attempts"),
                "error": unit.get("error"),
            }
    return None


def step_index(step_ids: Sequence[str], step_id: str | None) -> int | None:
    try:
        return list(step_ids).index(step_id) if step_id is not None else None
    except ValueError:
        return None


def redact_dict(value: dict[str, Any]) -> dict[str, Any]:
    """:func:`kneo.redaction.redact` for a JSON object, typed."""
    out: dict[str, Any] = _redact_any(value)
    return out
