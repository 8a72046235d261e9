"""The execution state's JSON form: compact, loadable from the full-key form older versions
stored, and the per-unit helpers that avoid walking the whole run."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from kneo.clock import utc_iso
from kneo.engine.journal import Boundary
from kneo.engine.state import ExecutionState

#: A state as versions before the compact form stored it: every key written out.
FULL_KEYS = {
    "format": 1,
    "input_text": "hello",
    "units": {
        "a": {
            "step_id": "a",
            "status": "completed",
            "output": "A",
            "attempts": 1,
            "finished_at": "2026-01-01T00:00:00Z",
        }
    },
    "order": ["a"],
    "agents": {},
    "decisions": {},
    "pending": [],
    "visits": {},
    "routes": [],
    "position": {},
    "output": None,
    "failure": None,
}


def test_new_state_snapshot_is_compact() -> None:
    assert ExecutionState.new("x").snapshot() == {"format": 1, "input_text": "x"}


def test_snapshot_omits_only_empty_fields() -> None:
    state = ExecutionState(FULL_KEYS)
    assert state.snapshot() == {
        "format": 1,
        "input_text": "hello",
        "units": FULL_KEYS["units"],
        "order": ["a"],
    }
    state.output = ""  # an empty final output is a value, not a default
    state.visits["a"] = 1
    state.pending.append({"request_id": "req_1", "wait_key": "a"})
    snap = state.snapshot()
    assert snap["output"] == "" and snap["visits"] == {"a": 1} and len(snap["pending"]) == 1
    assert "failure" not in snap and "decisions" not in snap


def test_full_key_state_loads_like_its_compact_form() -> None:
    old, compact = ExecutionState(FULL_KEYS), ExecutionState(ExecutionState(FULL_KEYS).snapshot())
    for state in (old, compact):
        assert state.input_text == "hello"
        assert state.completed("a") == FULL_KEYS["units"]["a"]
        assert state.completed_steps() == ["a"]
        assert state.outputs_by_step() == {"a": "A"}
        assert state.agents == {} and state.decisions == {} and state.pending == []
        assert state.visits == {} and state.routes == [] and state.position == {}
        assert state.output is None and state.failure is None
    assert old.snapshot_text() == compact.snapshot_text()


def test_compact_round_trip_preserves_every_field() -> None:
    state = ExecutionState.new("in")
    state.units["b"] = {"step_id": "b", "status": "completed", "output": "B", "attempts": 2}
    state.order.append("b")
    state.agents["b"] = {"messages": [{"role": "user", "content": "hi"}], "turns": 1}
    state.decisions["b:gate"] = {"decision": "approved"}
    state.pending.append({"request_id": "req_1"})
    state.visits["b"] = 2
    state.routes.append({"unit_key": "b", "from": "b", "to": None})
    state.position = {"unit_key": "c", "step_id": "c"}
    state.output = "done"
    state.failure = {"code": "x"}
    text = state.snapshot_text()
    again = ExecutionState(json.loads(text))
    assert again.snapshot_text() == text
    assert json.loads(text) == state.snapshot()


def test_loading_copies_the_input() -> None:
    data = json.loads(json.dumps(FULL_KEYS))
    state = ExecutionState(data)
    state.units["a"]["output"] = "changed"
    state.order.append("b")
    assert data["units"]["a"]["output"] == "A" and data["order"] == ["a"]


def test_outputs_by_step_folds_new_units_and_keeps_latest_per_step() -> None:
    state = ExecutionState.new("x")

    def finish(key: str, step_id: str, output: str | None) -> None:
        state.units[key] = {"step_id": step_id, "status": "completed", "output": output}
        state.order.append(key)

    finish("a", "a", "A1")
    first = state.outputs_by_step()
    assert first == {"a": "A1"}
    finish("b", "b", None)  # no output: not listed
    finish("a#2", "a", "A2")  # a graph loop: the latest output wins, first position kept
    finish("c", "c", "C")
    assert list(state.outputs_by_step().items()) == [("a", "A2"), ("c", "C")]
    assert first == {"a": "A1"}, "a returned dict is the caller's own"
    first["z"] = "mutated"
    assert "z" not in state.outputs_by_step()
    state.order = ["c"]  # a replaced timeline is folded from scratch
    assert state.outputs_by_step() == {"c": "C"}
    state.order.extend(["d", "e"])  # "d" listed before its record exists: skipped, not lost
    state.units["e"] = {"step_id": "e", "status": "completed", "output": "E"}
    assert state.outputs_by_step() == {"c": "C", "e": "E"}
    state.units["d"] = {"step_id": "d", "status": "completed", "output": "D"}
    assert list(state.outputs_by_step().items()) == [("c", "C"), ("d", "D"), ("e", "E")]


def test_boundary_decodes_state_text_on_first_use() -> None:
    text = ExecutionState(FULL_KEYS).snapshot_text()
    boundary = Boundary(kind="step_completed", state_text=text, unit_key="a")
    assert boundary.state == json.loads(text)
    assert boundary.state is boundary.state  # decoded once
    given = {"format": 1, "input_text": ""}
    assert Boundary(kind="run_paused", state=given).state is given
    with pytest.raises(ValueError):
        Boundary(kind="step_completed")


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 11, 21, 11, 53, 8, 123456, tzinfo=UTC),
        datetime(2026, 11, 21, 11, 53, 8, tzinfo=UTC),
        datetime(2026, 11, 21, 13, 53, 8, 5, tzinfo=timezone(timedelta(hours=2))),
        datetime(2026, 11, 21, 11, 53, 8, 5),
    ],
)
def test_utc_iso_is_z_suffixed_utc(value: datetime) -> None:
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    expected = aware.astimezone(UTC).isoformat().replace("+00:00", "Z")
    assert utc_iso(value) == expected and expected.endswith("Z")
    assert utc_iso(None) is None


def test_snapshot_text_with_cached_units_equals_a_plain_encoding() -> None:
    """Finished units' JSON is cached; replaced records and unfinished ones are re-encoded."""
    state = ExecutionState(FULL_KEYS)

    def plain() -> str:
        return json.dumps(state._fields(), separators=(",", ":"), ensure_ascii=False)

    assert state.snapshot_text() == plain()
    state.units["b"] = {"step_id": "b", "status": "reviewing", "output": "draft", "round": 1}
    assert state.snapshot_text() == plain()
    state.units["b"]["output"] = "draft 2"  # an unfinished record may change in place
    assert '"draft 2"' in state.snapshot_text() and state.snapshot_text() == plain()
    state.units["b"] = {"step_id": "b", "status": "completed", "output": "é ✓", "attempts": 1}
    state.order.append("b")
    assert state.snapshot_text() == plain()
    state.units["a"] = {"step_id": "a", "status": "skipped", "output": "x", "attempts": 0}
    assert state.snapshot_text() == plain()
    del state.units["a"]
    state.order.remove("a")
    state.position = {"unit_key": "c", "step_id": "c"}
    assert state.snapshot_text() == plain()
    assert json.loads(state.snapshot_text()) == state.snapshot()


def test_initial_is_the_snapshot_of_a_new_state() -> None:
    text = "in ü \u2028 put"
    assert (
        ExecutionState.initial(text)
        == ExecutionState.new(text).snapshot()
        == {
            "format": 1,
            "input_text": text,
        }
    )
