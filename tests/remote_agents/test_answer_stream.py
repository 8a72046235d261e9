"""An agent's answer as it is generated (``model.stream: true``): ``answer.delta`` events,
opt-in on the run's event stream (Python ``events(include=...)``, ``stream()``, and the HTTP
SSE stream's ``include``), redacted as the final answer, joined equal to the final answer;
absent for a reader that does not ask."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from kneo.platform import create_platform
from kneo.service.app import create_app
from kneo.settings import Settings
from kneo.spec.project import ProjectContext
from kneo.store import RunQuery

ANSWER = (
    "The report is ready: revenue grew in every region this quarter, and the token "
    "sk-abcdefghijklmnopqrstuvwx1234 must never be shown, said the analyst at the end."
)


def _spec(text: str = ANSWER, stream: bool = True) -> dict[str, Any]:
    return {
        "version": "v1",
        "agent": {
            "name": "writer",
            "model": {"provider": "dummy", "stream": stream, "script": [{"text": text}]},
        },
    }


@pytest.fixture()
def manager(tmp_path: Path) -> Any:
    (tmp_path / ".kneo").mkdir()
    settings = Settings.from_env({"KNEO_SERV_DATABASE_URL": f"sqlite:///{tmp_path / 'k.db'}"})
    found = create_platform(settings, ProjectContext.discover(cwd=tmp_path, settings=settings))
    yield found
    found.store.close()


def test_streamed_deltas_join_to_the_redacted_final_answer(manager: Any) -> None:
    result = manager.run_from_spec(input_text="go", spec=_spec())
    assert result.status == "succeeded"
    deltas = [e for e in manager.events(result.run_id, include=["answer.delta"])]
    deltas = [e for e in deltas if e.type == "answer.delta"]
    assert len(deltas) > 2  # token by token, not whole
    joined = "".join(e.data["text"] for e in deltas)
    final = manager.get_run(result.run_id)["output_text"]
    assert joined == final
    assert "sk-abcdefghijklmnopqrstuvwx1234" not in json.dumps([e.data for e in deltas])
    assert deltas[-1].data["done"] is True and deltas[-1].data["final"] is True
    assert "".join(manager.stream(result.run_id)) == final
    plain = [e.type for e in manager.events(result.run_id)]
    assert "answer.delta" not in plain  # opt-in only


def test_without_stream_no_deltas_are_recorded(manager: Any) -> None:
    result = manager.run_from_spec(input_text="go", spec=_spec(stream=False))
    events = manager.events(result.run_id, include=["answer.delta"])
    assert [e for e in events if e.type == "answer.delta"] == []


def test_the_sse_stream_sends_deltas_when_asked(manager: Any) -> None:
    result = manager.run_from_spec(input_text="go", spec=_spec())
    app = create_app(False, settings=manager.settings, manager=manager, start_worker=False)
    with TestClient(app) as client:
        body = client.get(f"/v1/runs/{result.run_id}/events?include=answer.delta").text
        plain = client.get(f"/v1/runs/{result.run_id}/events").text
        bad = client.get(f"/v1/runs/{result.run_id}/events?include=tokens")
    texts = [
        json.loads(line[len("data: ") :])["data"]["text"]
        for block in body.split("\n\n")
        if "event: answer.delta" in block
        for line in block.splitlines()
        if line.startswith("data: ")
    ]
    assert "".join(texts) == manager.get_run(result.run_id)["output_text"]
    assert "answer.delta" not in plain
    assert bad.status_code == 400 and "include" in bad.text


def test_an_openai_compatible_server_streams_the_answer(tmp_path: Path) -> None:
    from tests.fake_models.server import serve

    (tmp_path / ".kneo").mkdir()
    config = {"version": "v1", "secrets": {"extra": {"stream_key": "STREAM_KEY"}}}
    (tmp_path / ".kneo" / "config.yaml").write_text(json.dumps(config))
    settings = Settings.from_env(
        {"KNEO_SERV_DATABASE_URL": f"sqlite:///{tmp_path / 'k.db'}", "STREAM_KEY": "sk-s-1"}
    )
    manager = create_platform(settings, ProjectContext.discover(cwd=tmp_path, settings=settings))
    with serve() as fake:
        fake.script(
            "streamer",
            [
                {"tool_calls": [{"name": "word_count", "arguments": {"text": "a b"}}]},
                {"text": "Counted {last_tool_result} words in the text you sent, all fine."},
            ],
        )
        spec = {
            "version": "v1",
            "agent": {
                "name": "writer",
                "tools": ["word_count"],
                "model": {
                    "provider": "openai-compatible",
                    "name": "streamer",
                    "base_url": fake.url + "/v1",
                    "api_key_env": "stream_key",
                    "stream": True,
                },
            },
            "components": {
                "tools": {
                    "word_count": {
                        "implementation": "tests.remote_agents.stream_tools:word_count",
                        "parameters": {
                            "type": "object",
                            "properties": {"text": {"type": "string"}},
                            "required": ["text"],
                        },
                    }
                }
            },
        }
        result = manager.run_from_spec(input_text="count", spec=spec)
        assert result.status == "succeeded", result.to_dict()
        assert all(s.body.get("stream") is True for s in fake.requests("streamer"))
    deltas = [
        e
        for e in manager.events(result.run_id, include=["answer.delta"])
        if e.type == "answer.delta"
    ]
    final = [d for d in deltas if d.data.get("final") is not False]
    assert "".join(d.data["text"] for d in final) == result.output_text
    assert result.output_text == "Counted 2 words in the text you sent, all fine."
    usage = manager.get_run(result.run_id)["usage"]
    assert usage["model_calls"] == 2 and usage["output_tokens"] > 0
    manager.store.close()


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_a_reader_sees_the_deltas_while_the_turn_runs(
    database: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deltas are in the trace as they come, not with the turn's checkpoint: halfway through
    the model's text, another reader of the store already has the first part of the answer."""
    from kneo.engine.providers.dummy import DummyProvider
    from kneo.store import open_store

    url = request.getfixturevalue("pg_database")() if database == "postgres" else None
    settings = Settings.from_env({})
    store = open_store(url, settings=settings, state_dir=tmp_path / "state")
    (tmp_path / ".kneo").mkdir()
    manager = create_platform(
        settings, ProjectContext.discover(cwd=tmp_path, settings=settings), store=store
    )
    halfway: list[str] = []
    streamed = DummyProvider.complete_stream

    def watched(self: DummyProvider, **kw: Any) -> Any:
        on_text = kw.pop("on_text")
        sent: list[str] = []

        def feed(text: str) -> None:
            on_text(text)
            sent.append(text)
            if len(sent) == 20:  # 100 characters in: read the running run's answer
                [run] = manager.list_runs(RunQuery(limit=1))["runs"]
                assert run["status"] == "running"
                halfway.append("".join(manager.stream(run["run_id"], follow=False)))

        return streamed(self, **kw, on_text=feed)

    monkeypatch.setattr(DummyProvider, "complete_stream", watched)
    result = manager.run_from_spec(input_text="go", spec=_spec())
    assert result.status == "succeeded", result.to_dict()
    final = str(manager.get_run(result.run_id)["output_text"])
    [partial] = halfway
    assert 40 < len(partial) < len(final) and final.startswith(partial)
    store.close()
