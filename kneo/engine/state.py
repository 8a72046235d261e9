"""The execution state: everything needed to continue a run, as plain JSON.

A workflow is executed as a deterministic program over *units* (one execution of one step,
named by a stable key such as ``draft``, ``review#2``, ``branch:security`` or
``r1:skeptic``). The state records each completed unit's result, the transcript of every
agent unit's completed turns, the decisions people made and the requests still pending.
Re-running the program against a state skips every completed unit and every completed
agent turn, which is how resume and recovery never execute finished work twice.

The state is mutated only by the engine, under a lock (concurrent branches share it), and
handed to the journal as a JSON snapshot at every step boundary. The snapshot leaves out empty
fields (``{}``, ``[]``, ``None``) since the loader defaults them: it is encoded and stored at
every step, and a state with every key written out (as older versions stored it) loads the same.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, NamedTuple

from kneo.jsontext import dumps

STATE_FORMAT = 1
#: Unit statuses that count as finished: ``skipped`` is a step a person declined to run.
DONE = ("completed", "continued", "skipped")


_DECODE = json.JSONDecoder().decode


class StateParts(NamedTuple):
    """A snapshot's JSON text and the texts it is made of (see
    :meth:`ExecutionState.snapshot_parts`)."""

    text: str
    #: top-level field -> its value's JSON text, in the text's order
    fields: dict[str, str]
    #: unit key -> its record's JSON text, in the text's order
    units: dict[str, str]


class ExecutionState:
    """Mutable, thread-safe execution state; :meth:`snapshot` is its JSON form."""

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        # A deep copy through JSON: several times cheaper than ``copy.deepcopy`` (a state is
        # plain JSON; anything else is stored as its JSON form at the first step anyway).
        raw: dict[str, Any] = _DECODE(dumps(dict(data or {})))
        self.input_text: str = raw.get("input_text", "")
        #: unit key -> {"step_id", "status", "output", "attempts", ...}
        self.units: dict[str, dict[str, Any]] = raw.get("units", {})
        #: unit keys in completion order (the replay timeline)
        self.order: list[str] = raw.get("order", [])
        #: unit key -> {"messages": [...], "turns": int, "tool_calls": int}
        self.agents: dict[str, dict[str, Any]] = raw.get("agents", {})
        #: wait key -> decision dict (answers survive restarts and replays)
        self.decisions: dict[str, dict[str, Any]] = raw.get("decisions", {})
        #: pending human requests (dicts of HumanRequest)
        self.pending: list[dict[str, Any]] = raw.get("pending", [])
        #: graph node -> visits so far, and the routing decisions taken
        self.visits: dict[str, int] = raw.get("visits", {})
        self.routes: list[dict[str, Any]] = raw.get("routes", [])
        #: the unit currently executing (None between units)
        self.position: dict[str, Any] = raw.get("position", {})
        self.output: str | None = raw.get("output")
        self.failure: dict[str, Any] | None = raw.get("failure")
        self._lock = threading.RLock()
        # ``outputs_by_step`` folded over ``order[:_folded]`` of the list ``_folded_order``: a
        # unit in ``order`` is finished and never rewritten, so only new keys need folding.
        self._outputs: dict[str, str] = {}
        self._folded = 0
        self._folded_order: list[str] | None = None
        # unit key -> (finished record, its ``"key":{...}`` JSON member, the record's text):
        # such a record is never changed in place, so each is encoded once, not every step.
        self._unit_json: dict[str, tuple[dict[str, Any], str, str]] = {}
        # field -> (str or int value, its JSON text): the input text is not re-encoded per step
        self._scalar_json: dict[str, tuple[Any, str]] = {}

    # ------------------------------------------------------------------ access

    @property
    def lock(self) -> threading.RLock:
        return self._lock

    @contextmanager
    def locked(self) -> Iterator[ExecutionState]:
        with self._lock:
            yield self

    def completed(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            unit = self.units.get(key)
            return dict(unit) if unit and unit.get("status") in DONE else None

    def completed_steps(self) -> list[str]:
        """Step ids of completed units in completion order (duplicates for graph loops)."""
        with self._lock:
            return [self.units[k]["step_id"] for k in self.order if k in self.units]

    def outputs_by_step(self) -> dict[str, str]:
        """The latest output of each completed step, by step id (a new dict).

        Called for every function step, so it folds in only the units finished since the last
        call instead of walking the whole run again.
        """
        with self._lock:
            order = self.order
            if order is not self._folded_order or len(order) < self._folded:
                self._outputs, self._folded, self._folded_order = {}, 0, order
            out, units, folded = self._outputs, self.units, self._folded
            for key in order[folded:]:
                unit = units.get(key)
                if unit is None:  # not recorded yet: fold it (and what follows) next time
                    break
                if unit.get("output") is not None:
                    out[unit["step_id"]] = unit["output"]
                folded += 1
            self._folded = folded
            if folded < len(order):  # the full walk skips a missing unit: do the same
                pending = dict(out)
                for key in order[folded:]:
                    unit = units.get(key)
                    if unit is not None and unit.get("output") is not None:
                        pending[unit["step_id"]] = unit["output"]
                return pending
            return dict(out)

    def pending_request(self, request_id: str) -> dict[str, Any] | None:
        with self._lock:
            for request in self.pending:
                if request.get("request_id") == request_id:
                    return dict(request)
            return None

    # ------------------------------------------------------------------ JSON

    def snapshot(self) -> dict[str, Any]:
        """A deep JSON copy, safe to serialize while other branches keep running."""
        return self.snapshot_with_text()[0]

    def snapshot_text(self) -> str:
        """The state as compact JSON text (exactly ``dumps(self._fields())``),
        encoded under the lock; finished units' records come from a cache."""
        return self.snapshot_parts().text

    def snapshot_parts(self) -> StateParts:
        """:meth:`snapshot_text` and the pieces it is joined from: each top-level field's
        JSON text and each unit's record text. A journal compares these texts with the last
        boundary's to find what changed without decoding or walking the state."""
        with self._lock:
            fields: dict[str, str] = {}
            units: dict[str, str] = {}
            parts = ["{"]
            for name, value in self._fields().items():
                if len(parts) > 1:
                    parts.append(",")
                parts.append(f'"{name}":')  # field names are plain ASCII
                if name == "units":
                    text = self._units_text(units)
                elif type(value) is str or type(value) is int:  # immutable: encode once
                    hit = self._scalar_json.get(name)
                    if hit is None or hit[0] is not value:
                        hit = self._scalar_json[name] = (value, dumps(value))
                    text = hit[1]
                else:
                    text = dumps(value)
                fields[name] = text
                parts.append(text)
            parts.append("}")
            return StateParts("".join(parts), fields, units)

    def _units_text(self, texts: dict[str, str]) -> str:
        """The ``units`` object's text; fills ``texts`` with each unit's record text."""
        cache = self._unit_json
        members = []
        for key, record in self.units.items():
            hit = cache.get(key)
            if hit is None or hit[0] is not record:
                value = dumps(record)
                member = f"{dumps(key)}:{value}"
                if record.get("status") not in DONE:  # may still change: encode every time
                    texts[key] = value
                    members.append(member)
                    continue
                hit = cache[key] = (record, member, value)
            texts[key] = hit[2]
            members.append(hit[1])
        return "{" + ",".join(members) + "}"

    def snapshot_with_text(self) -> tuple[dict[str, Any], str]:
        """:meth:`snapshot` and its JSON text from one encoding (decoding the text is a C
        loop, several times cheaper than ``copy.deepcopy`` of the same structure)."""
        state, parts = self.snapshot_with_parts()
        return state, parts.text

    def snapshot_with_parts(self) -> tuple[dict[str, Any], StateParts]:
        """:meth:`snapshot` and the :meth:`snapshot_parts` it was decoded from."""
        parts = self.snapshot_parts()
        return _DECODE(parts.text), parts

    def _fields(self) -> dict[str, Any]:
        """The JSON fields, without the empty ones (the constructor defaults them)."""
        fields: dict[str, Any] = {"format": STATE_FORMAT, "input_text": self.input_text}
        for name, value in (
            ("units", self.units),
            ("order", self.order),
            ("agents", self.agents),
            ("decisions", self.decisions),
            ("pending", self.pending),
            ("visits", self.visits),
            ("routes", self.routes),
            ("position", self.position),
            ("output", self.output),
            ("failure", self.failure),
        ):
            if value or (value is not None and name == "output"):
                fields[name] = value
        return fields

    @classmethod
    def new(cls, input_text: str) -> ExecutionState:
        return cls(cls.initial(input_text))

    @staticmethod
    def initial(input_text: str) -> dict[str, Any]:
        """:meth:`snapshot` of a new run's state, without building one."""
        return {"format": STATE_FORMAT, "input_text": input_text}
