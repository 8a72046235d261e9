"""What model calls cost: tokens per call in the trace and in ``kneo_model_tokens_total``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from kneo import metrics
from kneo.platform import create_platform
from kneo.settings import Settings
from kneo.spec.project import ProjectContext
from tests.fake_models.server import INPUT_PER_MESSAGE, OUTPUT_PER_REPLY, serve

SPEC: dict[str, Any] = {
    "version": "v1",
    "agent": {
        "name": "counter",
        "tools": ["word_count"],
        "policies": {"tool": {"allow": ["word_count"]}},
    },
    "workflow": {
        "type": "sequential",
        "name": "usage",
        "steps": [{"id": "count", "kind": "agent", "ref": "counter"}],
    },
}


def _tokens(text: str, provider: str, model: str) -> dict[str, float]:
    return {
        s.labels["direction"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "kneo_model_tokens_total"
        and s.labels["provider"] == provider
        and s.labels["model"] == model
    }


def test_tokens_of_every_call_reach_the_trace_and_the_metric(tmp_path: Path) -> None:
    metrics.enable()
    with serve() as fake:
        fake.script(
            "counting",
            [
                {"tool_calls": [{"name": "word_count", "arguments": {"text": "a b"}}]},
                {"text": "two"},
            ],
        )
        SPEC["agent"]["model"] = {
            "provider": "anthropic",
            "name": "counting",
            "base_url": fake.url,
        }
        (tmp_path / "usage.yaml").write_text(yaml.safe_dump(SPEC))
        settings = Settings.from_env({"ANTHROPIC_API_KEY": "sk-ant-usage-0000000000000000"})
        manager = create_platform(
            settings, ProjectContext.discover(cwd=tmp_path, settings=settings)
        )
        try:
            result = manager.run_from_spec(input_text="count", spec_path=tmp_path / "usage.yaml")
            assert result.status == "succeeded" and result.output_text == "two"
            events = manager.store.runs.list_trace(result.run_id).items
        finally:
            manager.store.close()
    turns = [e.payload for e in events if e.event_type == "model_turn_completed"]
    # the fake counts 10 input tokens per message sent (user; user, assistant, tool result)
    assert [t["usage"] for t in turns] == [
        {"input_tokens": INPUT_PER_MESSAGE, "output_tokens": OUTPUT_PER_REPLY},
        {"input_tokens": 3 * INPUT_PER_MESSAGE, "output_tokens": OUTPUT_PER_REPLY},
    ]
    assert [t["stop_reason"] for t in turns] == ["tool_calls", "stop"]
    body, _ = metrics.render(metrics._metrics.registry)  # type: ignore[union-attr]
    assert _tokens(body.decode(), "anthropic", "counting") == {
        "input": 4 * INPUT_PER_MESSAGE,
        "output": 2 * OUTPUT_PER_REPLY,
    }
