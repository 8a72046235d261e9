"""The ``slow`` marker names real modules: a renamed journey must not slip into the quick loop."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import SLOW_MODULES

TESTS = Path(__file__).resolve().parents[1]


def test_every_slow_module_exists() -> None:
    assert SLOW_MODULES and all((TESTS / module).is_file() for module in SLOW_MODULES)
