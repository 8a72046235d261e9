"""Migration: unversioned and v0 specs become v1 that validates; future versions fail fast."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from kneo.errors import SpecError
from kneo.runtimes import RuntimeRegistry
from kneo.spec.loader import load_spec_data
from kneo.spec.migrate import detect_version, migrate_spec
from kneo.spec.validation import validate_spec
from kneo.tools import ToolRegistry

from .conftest import EXAMPLES


def test_unversioned_example_migrates_and_validates(
    tools: ToolRegistry, runtimes: RuntimeRegistry
) -> None:
    data = yaml.safe_load((EXAMPLES / "legacy_agent.yaml").read_text())
    migrated, changes = migrate_spec(data)
    assert migrated["version"] == "v1" and next(iter(migrated)) == "version"
    assert migrated["agent"]["system_prompt"].startswith("You are a helpful research assistant")
    assert migrated["agent"]["model"] == {"provider": "openai", "name": "gpt-4o-mini"}
    assert migrated["agent"]["strategy"] == {"type": "react", "max_iterations": 4}
    assert "instructions" not in migrated["agent"] and "max_iterations" not in migrated["agent"]
    assert len(changes) == 6
    spec = load_spec_data(migrated)
    found = validate_spec(spec, tool_registry=tools, runtime_registry=runtimes)
    assert not [d for d in found if d.severity == "error"]
    assert "W_DEPRECATED_FIELD" not in {d.code for d in found}


def test_v0_steps_are_rewritten() -> None:
    data: dict[str, Any] = {
        "version": "v0",
        "agent": {"name": "w", "model": "dummy"},
        "workflow": {"steps": [{"name": "write", "agent": "w"}, {"name": "ok", "human": "boss"}]},
        "components": {"humans": {"boss": {}}},
    }
    migrated, changes = migrate_spec(data)
    assert migrated["workflow"]["steps"] == [
        {"id": "write", "kind": "agent", "ref": "w"},
        {"id": "ok", "kind": "human", "ref": "boss"},
    ]
    assert migrated["agent"]["model"] == {"provider": "dummy", "name": "dummy"}
    assert "set version: v1 (was v0)" in changes
    load_spec_data(migrated)
    assert data["version"] == "v0"  # input untouched


def test_v1_with_deprecated_fields_only_loses_them() -> None:
    data = {
        "version": "v1",
        "agent": {
            "name": "a",
            "instructions": "hi",
            "strategy": {"max_iterations": 3},
            "max_iterations": 9,
        },
    }
    migrated, changes = migrate_spec(data)
    assert migrated["agent"] == {
        "name": "a",
        "system_prompt": "hi",
        "strategy": {"max_iterations": 3},
    }
    assert any("dropped agent.max_iterations" in c for c in changes)
    clean, none = migrate_spec(migrated)
    assert none == [] and clean == migrated


@pytest.mark.parametrize("version", ["v2", "3", "next"])
def test_future_versions_fail_fast(version: str) -> None:
    with pytest.raises(SpecError) as err:
        migrate_spec({"version": version, "agent": {"name": "a"}})
    assert err.value.code == "E_UNSUPPORTED_VERSION"


@pytest.mark.parametrize(
    ("data", "expected"), [({}, "unversioned"), ({"version": 0}, "v0"), ({"version": "v1"}, "v1")]
)
def test_detect_version(data: dict[str, Any], expected: str) -> None:
    assert detect_version(data) == expected
