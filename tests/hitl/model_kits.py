"""One journey, every provider: what a test needs to run a spec against each model backend.

A kit gives a spec's ``model`` block for a script (the ``dummy`` provider's turn format:
``text`` or ``tool_calls``, ``{last_tool_result}`` filled in), the environment the ``kneo``
processes need, and what the model was sent, request by request, read back in a common
shape (:class:`Sent`): for ``dummy`` from its call log, for a real provider from the local
server that speaks its wire format (``tests/fake_models``), parsed from that format.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kneo.engine.providers.dummy import read_call_log
from tests.fake_models.server import FakeModels, serve


@dataclass(frozen=True)
class Sent:
    """One model request: the tool results it carried (content, call id) and the ids of the
    tool calls of its assistant turns, in order."""

    results: list[tuple[str, str]] = field(default_factory=list)
    call_ids: list[str] = field(default_factory=list)


class ModelKit:
    """The ``dummy`` provider; subclasses put a real provider's SDK in front of a fake."""

    name = "dummy"

    @contextmanager
    def started(self, project: Path) -> Iterator[ModelKit]:
        yield self

    def model(self, name: str, script: list[dict[str, Any]]) -> dict[str, Any]:
        return {"provider": "dummy", "name": name, "script": script}

    def env(self) -> dict[str, str]:
        return {}

    def requests(self, project: Path) -> list[Sent]:
        sent = []
        for entry in read_call_log(project / "calls.jsonl"):
            messages = entry["messages"]
            sent.append(
                Sent(
                    results=[
                        (m.get("content") or "", m["tool_call_id"])
                        for m in messages
                        if m["role"] == "tool"
                    ],
                    call_ids=[c["id"] for m in messages for c in m.get("tool_calls") or []],
                )
            )
        return sent


class ServedKit(ModelKit):
    """A real provider's SDK against the local server speaking its wire format, started in
    the test's process (the ``kneo`` processes reach it on loopback, allowed in ``dev``)."""

    VARIABLES = {
        "openai": "OPENAI_API_KEY",
        "azure-openai": "AZURE_OPENAI_API_KEY",
        "anthropic": "ANTHROPIC_API_KEY",
        "google": "GOOGLE_API_KEY",
    }

    def __init__(self, provider: str) -> None:
        self.name = provider
        self.fake: FakeModels | None = None

    @contextmanager
    def started(self, project: Path) -> Iterator[ModelKit]:
        with serve() as fake:
            kit = copy.copy(self)
            kit.fake = fake
            yield kit

    def model(self, name: str, script: list[dict[str, Any]]) -> dict[str, Any]:
        assert self.fake is not None
        self.fake.script(name, script)
        base_url = f"{self.fake.url}/v1" if self.name == "openai" else self.fake.url
        return {"provider": self.name, "name": name, "base_url": base_url}

    def env(self) -> dict[str, str]:
        return {self.VARIABLES[self.name]: f"sk-journey-{self.name}-0123456789abcdef"}

    def requests(self, project: Path) -> list[Sent]:
        assert self.fake is not None
        return [
            Sent(
                results=[(content, call_id) for call_id, _, content in seen.results],
                call_ids=[call_id for call_id, _, _ in seen.calls],
            )
            for seen in self.fake.seen
        ]


KITS: list[ModelKit] = [
    ModelKit(),
    *(ServedKit(p) for p in ("openai", "azure-openai", "anthropic", "google")),
]
