"""Event triggers a spec declares (``triggers:``), and the pure parts of a delivery: the
filter and the mapping, both JSON Pointers (RFC 6901) into the event, never code.

A trigger lives in the signed spec of a bundle and answers only while that spec is the
active revision (:mod:`kneo.platform.triggers` does the I/O). An event is a JSON document:
a ``json`` delivery's body, or a CloudEvent's attributes with its ``data``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

import jsonpointer
from pydantic import BaseModel, ConfigDict, Field, field_validator

from kneo.names import NAME_PATTERN

_HEADER = r"^[A-Za-z0-9-]{1,64}$"


def _pointer(value: str) -> str:
    try:
        jsonpointer.JsonPointer(value)
    except jsonpointer.JsonPointerException as exc:
        raise ValueError(f"{value!r} is not a JSON Pointer (RFC 6901, e.g. /data/id)") from exc
    return value


class TriggerSpec(BaseModel):
    """One ``triggers:`` entry: how a delivery is verified, which events start a run, and
    how an event becomes the run's input and metadata."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN, max_length=128)
    #: a secret the project declares for the environment (its name or variable), read
    #: through the trust kernel with the environment's grant
    secret: str = Field(min_length=1, max_length=255)
    #: ``standard-webhooks`` (webhook-id, webhook-timestamp, webhook-signature) or
    #: ``hmac-sha256`` of the body, hex, in ``header`` (``sha256=`` prefix allowed)
    signature: Literal["standard-webhooks", "hmac-sha256"] = "standard-webhooks"
    header: str = Field(default="X-Signature", pattern=_HEADER)
    #: ``json`` (the body is the event) or ``cloudevents`` (structured or binary mode)
    format: Literal["json", "cloudevents"] = "json"
    #: where a ``json`` event's id is (a CloudEvent's is its ``source`` and ``id``)
    event_id: str = "/id"
    #: every pointer must resolve to exactly this value, or the event starts nothing
    filter: dict[str, Any] = Field(default_factory=dict, max_length=20)
    #: the run's input: the value at this pointer (a string as is, anything else as JSON);
    #: ``""`` (the default): the whole event as JSON
    input: str = ""
    #: run metadata: key -> pointer
    metadata: dict[str, str] = Field(default_factory=dict, max_length=20)
    target: Literal["workflow", "agent"] = "workflow"

    @field_validator("event_id", "input")
    @classmethod
    def _one_pointer(cls, value: str) -> str:
        return _pointer(value)

    @field_validator("filter")
    @classmethod
    def _pointer_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key in value:
            _pointer(key)
        return value

    @field_validator("metadata")
    @classmethod
    def _pointer_values(cls, value: dict[str, str]) -> dict[str, str]:
        for pointer in value.values():
            _pointer(pointer)
        return value


_MISSING = object()


def pick(event: object, pointer: str) -> Any:
    """The value at ``pointer`` in ``event`` (``None`` when it is not there)."""
    found = jsonpointer.resolve_pointer(event, pointer, _MISSING)
    return None if found is _MISSING else found


def passes(trigger: TriggerSpec, event: object) -> bool:
    """Whether ``event`` matches every entry of the trigger's filter."""
    return all(pick(event, p) == expected for p, expected in trigger.filter.items())


def run_input(trigger: TriggerSpec, event: object) -> str:
    """The run's input text the mapping makes of ``event``."""
    value = pick(event, trigger.input)
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def run_metadata(trigger: TriggerSpec, event: object) -> dict[str, Any]:
    """The run metadata the mapping makes of ``event`` (a pointer not there: ``None``)."""
    return {key: pick(event, pointer) for key, pointer in trigger.metadata.items()}


def event_of(attributes: Mapping[str, Any], data: object) -> dict[str, Any]:
    """A CloudEvent as the JSON document pointers address: its attributes (times as ISO
    text) and ``data``."""
    doc = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in attributes.items()}
    doc["data"] = data
    return doc


__all__ = ["TriggerSpec", "event_of", "passes", "pick", "run_input", "run_metadata"]
