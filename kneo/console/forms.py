"""Decision forms: what the task page offers for a stored request, and what a posted form
means as a resume call. Pure: no I/O, no web framework.

:func:`decision_form` turns a request (the API's view of it) into the actions a person can
take, each one plain HTML form posting the API's resume names (``decision``, ``content``,
``selected_option``, ``request_id``). Typed input becomes one field per ``input_schema``
property (posted as ``field.<name>``), gathered by :func:`parse_decision` into the JSON
``content`` the API takes; kinds in :data:`JSON_SCHEMA_KINDS` instead take one JSON
document in a box, checked against their ``input_schema``. Whether the answer is *valid* is
the platform's call, the same one the API makes; this module only turns form fields into
that call's arguments and says which field the platform's refusal is about.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from kneo.engine.human import Decision

FIELD_PREFIX = "field."

#: Readable names of the request kinds (and the inbox's ``promotion`` filter), in the order
#: the inbox's kind filter lists them.
KIND_LABELS: dict[str, str] = {
    "approval": "approval",
    "confirmation": "step confirmation",
    "input": "typed input",
    "review": "output review",
    "iteration": "loop iteration",
    "route": "route selection",
    "tool_approval": "tool call approval",
    "tool_input": "tool arguments",
    "external_tool": "external tool",
    "question": "question",
    "error": "error",
    "budget": "budget",
    "child_run": "child run (decided by the child)",
    "promotion": "promotion approval",
}
#: Kinds whose ``input_schema`` describes one JSON document typed in a box (a tool's
#: arguments, an external tool's result), not a form of fields.
JSON_SCHEMA_KINDS = frozenset({"tool_approval", "external_tool"})

#: How each decision is offered, per request kind: (button label, content label or None,
#: whether content is required).
_LABELS: dict[str, dict[str, tuple[str, str | None, bool]]] = {
    "approval": {
        "approved": ("Approve", None, False),
        "edited": ("Approve with my edit", "Edited content", True),
        "rejected": ("Reject", "Comment (optional)", False),
    },
    "confirmation": {
        "approved": ("Run the step", None, False),
        "rejected": ("Do not run it", "Comment (optional)", False),
    },
    "review": {
        "approved": ("Approve the output", None, False),
        "edited": ("Replace the output", "Output", True),
        "rejected": ("Reject and run again", "Feedback for the next round", False),
    },
    "tool_approval": {
        "approved": ("Run the call", None, False),
        "edited": ("Run with edited arguments", "Arguments (JSON)", True),
        "rejected": ("Refuse the call", "Message to the agent (optional)", False),
    },
    "iteration": {
        "approved": ("Continue the loop", None, False),
        "edited": ("Continue with my edit", "Output to continue with", True),
        "rejected": ("Stop the loop here", None, False),
    },
    "tool_input": {"provided": ("Run the call with these values", None, True)},
    "external_tool": {
        "provided": ("Submit the result", "Result", True),
        "rejected": ("Decline to run it", "Message to the agent (optional)", False),
    },
    "question": {"provided": ("Answer", "Answer", True)},
    "budget": {
        "approved": ("Continue with the limit raised", None, False),
        "provided": ("Continue with this limit", None, True),
        "rejected": ("Stop the run", "Reason (optional)", False),
    },
}
_DEFAULT_LABELS: dict[str, tuple[str, str | None, bool]] = {
    "approved": ("Approve", None, False),
    "edited": ("Submit edit", "Content", True),
    "rejected": ("Reject", "Comment (optional)", False),
    "provided": ("Submit", "Answer", True),
    "selected": ("Select", None, False),
}
_ORDER = ("provided", "selected", "approved", "edited", "rejected")


@dataclass(frozen=True)
class InputField:
    """One typed-input field, generated from an ``input_schema`` property."""

    name: str
    type: str  # string | number | integer | boolean | enum
    required: bool
    description: str | None = None
    options: tuple[str, ...] = ()
    value: Any = None
    error: str | None = None

    @property
    def form_name(self) -> str:
        return FIELD_PREFIX + self.name


@dataclass(frozen=True)
class Action:
    """One decision a person can post: a button, maybe a content box, fields or options."""

    decision: str
    label: str
    content_label: str | None = None
    content_required: bool = False
    content: str = ""
    fields: tuple[InputField, ...] = ()
    options: tuple[str, ...] = ()
    schema: Mapping[str, Any] | None = None  # what a JSON content box must match
    error: str | None = None


@dataclass(frozen=True)
class DecisionForm:
    request_id: str
    kind: str
    actions: tuple[Action, ...]
    error: str | None = None


@dataclass(frozen=True)
class Rejected:
    """A refused attempt to re-render with: the decision, what was posted, and why."""

    decision: str
    posted: Mapping[str, str] = field(default_factory=dict)
    message: str = ""
    field: str | None = None


def input_fields(schema: Mapping[str, Any] | None) -> tuple[InputField, ...]:
    """The fields of an object ``input_schema`` (none for any other schema)."""
    if not schema or schema.get("type") != "object":
        return ()
    required = set(schema.get("required") or ())
    out = []
    for name, prop in (schema.get("properties") or {}).items():
        prop = prop if isinstance(prop, Mapping) else {}
        enum = tuple(str(v) for v in prop.get("enum") or ())
        kind = "enum" if enum else str(prop.get("type") or "string")
        if kind not in ("string", "number", "integer", "boolean", "enum"):
            kind = "string"
        out.append(
            InputField(
                name=str(name),
                type=kind,
                required=name in required,
                description=prop.get("description"),
                options=enum,
            )
        )
    return tuple(out)


def _prefill(request: Mapping[str, Any], decision: str) -> str:
    ctx = request.get("context") or {}
    if decision != "edited":
        return ""
    if request.get("kind") == "tool_approval":
        return json.dumps(ctx.get("arguments") or {}, indent=2, sort_keys=True)
    return str(ctx.get("output_preview") or ctx.get("input_preview") or "")


def decision_form(request: Mapping[str, Any], rejected: Rejected | None = None) -> DecisionForm:
    """The actions for ``request``, in a fixed order; ``rejected`` puts a refused attempt's
    values back with its error next to the field (or the action) it is about."""
    kind = str(request.get("kind") or "approval")
    labels = _LABELS.get(kind, {})
    schema = request.get("input_schema") if kind not in JSON_SCHEMA_KINDS else None
    # a wait on a child run: the child's outcome decides it, no person (no action offered)
    offered = () if kind == "child_run" else (request.get("decisions") or ())
    accepted = [d for d in _ORDER if d in offered]
    actions = []
    for decision in accepted:
        label, content_label, required = labels.get(decision) or _DEFAULT_LABELS[decision]
        fields: tuple[InputField, ...] = ()
        if decision == "provided":
            fields = input_fields(schema)
            if fields:
                content_label, required = None, False
        content = _prefill(request, decision)
        json_schema = None
        if kind in JSON_SCHEMA_KINDS and decision in ("edited", "provided"):
            json_schema = request.get("input_schema") or None
        error = None
        if rejected is not None and rejected.decision == decision:
            content = rejected.posted.get("content", content)
            fields = tuple(
                replace(
                    f,
                    value=rejected.posted.get(f.form_name),
                    error=rejected.message if rejected.field == f.name else None,
                )
                for f in fields
            )
            if not any(f.error for f in fields):
                error = rejected.message
        actions.append(
            Action(
                decision=decision,
                label=label,
                content_label=content_label,
                content_required=required,
                content=content,
                fields=fields,
                options=tuple(request.get("options") or ()) if decision == "selected" else (),
                schema=json_schema,
                error=error,
            )
        )
    return DecisionForm(str(request.get("request_id")), kind, tuple(actions))


def _coerce(f: InputField, raw: str | None) -> Any:
    """A posted field's value as its schema type when it reads as one; otherwise the text as
    it was typed, for the platform to refuse with the field's name (one validator: the
    API's). ``None`` for an empty field, which is left out."""
    if f.type == "boolean":
        return raw is not None and raw not in ("", "false", "off", "0")
    if raw is None or raw.strip() == "":
        return None
    text = raw.strip()
    if f.type in ("integer", "number"):
        try:
            return int(text)
        except ValueError:
            pass
        if f.type == "number":
            try:
                value = float(text)
            except ValueError:
                return raw
            return value if math.isfinite(value) else raw
    return raw


def parse_decision(request: Mapping[str, Any], posted: Mapping[str, str]) -> Decision:
    """The resume arguments a posted form stands for. Only what the chosen decision takes is
    passed on (an approval posts no content, only ``selected`` an option), so a form never
    trips the API's checks for fields it merely carried along; everything else, a decision
    the request does not accept included, the platform judges. ``request`` needs only its
    ``request_id``, plus ``kind`` and ``input_schema`` for typed input's fields."""
    decision = (posted.get("decision") or "").strip()
    request_id = str(request.get("request_id"))
    if decision == "selected":
        return Decision(request_id, decision, selected_option=posted.get("selected_option"))
    if decision == "approved":
        return Decision(request_id, decision)
    fields = input_fields(request.get("input_schema")) if decision == "provided" else ()
    if request.get("kind") not in JSON_SCHEMA_KINDS and fields and "content" not in posted:
        values = {f.name: _coerce(f, posted.get(f.form_name)) for f in fields}
        answer = json.dumps({k: v for k, v in values.items() if v is not None})
        return Decision(request_id, decision, content=answer)
    return Decision(request_id, decision, content=posted.get("content") or None)
