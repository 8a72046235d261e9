"""docs/clients.md's Python example runs as written against a live ``kneo service serve``."""

from __future__ import annotations

import re

import pytest
from svc_helpers import KEYS, ROOT, auth_env


def test_python_example_runs(live_server, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "clients.md").read_text(), re.S)
    assert len(blocks) == 1, blocks
    server = live_server(auth_env())
    monkeypatch.setenv("KNEO_URL", server.url)
    monkeypatch.setenv("KNEO_OPERATOR_KEY", KEYS["operator"])
    monkeypatch.setenv("KNEO_REVIEWER_KEY", KEYS["reviewer"])
    namespace: dict[str, object] = {"__name__": "clients_doc"}
    exec(compile(blocks[0], "docs/clients.md#python", "exec"), namespace)
    assert namespace["done"]["status"] == "succeeded"  # type: ignore[index]
