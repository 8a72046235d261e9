"""``--a2a`` without the ``a2a`` extra stops at start with a clear error naming it."""

from __future__ import annotations

import sys

import pytest

from kneo.errors import ConfigError
from kneo.service import create_app
from kneo.settings import Settings


def test_a2a_without_its_sdk_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [
        n for n in sys.modules if n == "a2a" or n.startswith(("a2a.", "kneo.service.a2a"))
    ]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "a2a", None)  # as if not installed
    with pytest.raises(ConfigError) as refused:
        create_app(False, settings=Settings.from_env({}), start_worker=False, a2a=True)
    assert refused.value.details["field"] == "a2a"
    assert "kneo-platform[a2a]" in refused.value.message
