"""The ``Respond…`` modal's typed form: a request's ``input_schema`` (a JSON Schema object)
as Slack Block Kit inputs, and a submission's values back as the JSON content the request
checks (docs/notifications.md).

Each property is one input block (``field.<name>``): an ``enum`` a choice of its values, a
``number``/``integer`` Slack's ``number_input``, a ``boolean`` a yes/no choice, a string a
text input, anything else (an object, an array) a text input read as JSON; a ``required``
property is a required input, the others optional. What each field is kept in the modal's
``private_metadata`` (``f``), so a submission is read back without asking the task again; a
value the request's schema refuses is its ``422``, shown on the form. Pure functions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from kneo.errors import InvalidRequest

#: Slack's limits: input blocks per view, options per select, a label's and an option's text
MAX_FIELDS = 50
MAX_OPTIONS = 100
FIELD_PREFIX = "field."


def _text(kind: str, text: str, limit: int) -> dict[str, Any]:
    return {"type": kind, "text": text[:limit] or "-"}


def _choice(values: list[Any]) -> dict[str, Any]:
    options = [
        {"text": _text("plain_text", str(v), 75), "value": json.dumps(v)[:150]}
        for v in values[:MAX_OPTIONS]
    ]
    return {"type": "static_select", "action_id": "value", "options": options}


def field_kind(spec: Mapping[str, Any]) -> str:
    """How a property is asked and read back: ``choice``, ``number``, ``integer``,
    ``boolean``, ``string`` or ``json``."""
    if isinstance(spec.get("enum"), list) and spec["enum"]:
        return "choice"
    kind = spec.get("type")
    if kind in ("number", "integer", "boolean", "string"):
        return str(kind)
    return "json"


def _element(kind: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    if kind == "choice":
        return _choice(list(spec["enum"]))
    if kind == "boolean":
        return _choice([True, False])
    if kind in ("number", "integer"):
        return {
            "type": "number_input",
            "action_id": "value",
            "is_decimal_allowed": kind == "number",
        }
    return {"type": "plain_text_input", "action_id": "value", "multiline": kind == "json"}


def schema_fields(schema: object) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The input blocks of an object schema's properties and each field's kind (none when
    ``schema`` is not an object with properties: the modal then takes free text)."""
    if not isinstance(schema, Mapping) or not isinstance(schema.get("properties"), Mapping):
        return [], {}
    required = set(schema.get("required") or [])
    blocks: list[dict[str, Any]] = []
    kinds: dict[str, str] = {}
    for name, spec in list(schema["properties"].items())[:MAX_FIELDS]:
        spec = spec if isinstance(spec, Mapping) else {}
        kind = kinds[str(name)] = field_kind(spec)
        label = str(name) + (" (JSON)" if kind == "json" else "")
        block: dict[str, Any] = {
            "type": "input",
            "block_id": FIELD_PREFIX + str(name),
            "label": _text("plain_text", label, 2000),
            "element": _element(kind, spec),
            "optional": name not in required,
        }
        if spec.get("description"):
            block["hint"] = _text("plain_text", str(spec["description"]), 2000)
        blocks.append(block)
    return blocks, kinds


def submitted_content(values: Mapping[str, Any], kinds: Mapping[str, str]) -> str | None:
    """The JSON content a typed form's submission gives (``None``: the form has no fields);
    a value that is not what its field asks is ``400`` naming the field."""
    if not kinds:
        return None
    out: dict[str, Any] = {}
    for name, kind in kinds.items():
        field = (values.get(FIELD_PREFIX + name) or {}).get("value") or {}
        chosen = (field.get("selected_option") or {}).get("value")
        raw = chosen if chosen is not None else field.get("value")
        if raw is None or raw == "":
            continue  # left empty: the request's schema says whether it may be
        if kind == "string":
            out[name] = raw
            continue
        try:
            out[name] = json.loads(raw)
        except ValueError:
            raise InvalidRequest(f"{name}: not a valid {kind} value", field=name) from None
        if kind == "integer" and isinstance(out[name], float) and out[name].is_integer():
            out[name] = int(out[name])
    return json.dumps(out)


__all__ = ["FIELD_PREFIX", "field_kind", "schema_fields", "submitted_content"]
