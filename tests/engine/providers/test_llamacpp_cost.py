"""Opt-in: what a run costs is the project's price table applied to the usage the real
llama.cpp server reported (``KNEO_TEST_LLAMACPP=1`` after ``python -m tests.llamacpp_server
prepare``; see ``test_llamacpp.py``). A recording proxy between Kneo and the server keeps
the server's own ``usage`` of every answer, so the test compares Kneo's figures with the
server's words, not with a number Kneo computed."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from kneo.platform import create_platform
from kneo.settings import Settings
from kneo.spec.project import ProjectContext
from tests.engine.providers.test_llamacpp import pytestmark as pytestmark
from tests.engine.providers.test_llamacpp import server as server

#: per million tokens
PRICES = {"input": "3", "output": "15"}


class Recorder:
    """A proxy to ``upstream`` that keeps each answer's ``usage``."""

    def __init__(self, upstream: str) -> None:
        self.usages: list[dict[str, int]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                request = urllib.request.Request(
                    upstream + self.path,
                    data=body,
                    headers={"Content-Type": "application/json"},
                    method="POST",
                )
                with urllib.request.urlopen(request, timeout=300) as answer:
                    status, data = answer.status, answer.read()
                usage = json.loads(data).get("usage")
                if usage:
                    recorder.usages.append(usage)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def recorder(server: str) -> Iterator[Recorder]:
    proxy = Recorder(server.removesuffix("/v1"))
    yield proxy
    proxy.close()


def test_a_run_costs_the_price_table_of_the_servers_reported_usage(
    recorder: Recorder, tmp_path: Path
) -> None:
    (tmp_path / ".kneo").mkdir()
    config = {
        "version": "v1",
        "secrets": {"providers": {"llama-cpp": "LOCAL_LLM_KEY"}},
        "prices": {"currency": "USD", "providers": {"llama-cpp": {"gemma-3-270m": PRICES}}},
    }
    (tmp_path / ".kneo" / "config.yaml").write_text(yaml.safe_dump(config))
    model = {"provider": "llama-cpp", "name": "gemma-3-270m", "base_url": f"{recorder.url}/v1"}
    agent = {
        "name": "poet",
        "instructions": "Answer in one short sentence.",
        "model": {**model, "temperature": 0.0, "max_tokens": 48},
    }
    spec = tmp_path / "poet.yaml"
    spec.write_text(yaml.safe_dump({"version": "v1", "agent": agent}))
    settings = Settings.from_env({"LOCAL_LLM_KEY": "unused-by-the-server"})
    manager = create_platform(settings, ProjectContext.discover(cwd=tmp_path, settings=settings))
    try:
        run = manager.run_from_spec(input_text="Name a colour.", spec_path=spec)
        assert str(run.status) == "succeeded", run
        usage = manager.get_run(run.run_id)["usage"]
    finally:
        manager.close()
    reported = recorder.usages
    assert reported, "the server reported no usage"
    prompt = sum(u["prompt_tokens"] for u in reported)
    completion = sum(u["completion_tokens"] for u in reported)
    assert (usage["input_tokens"], usage["output_tokens"]) == (prompt, completion)
    assert prompt > 0 and completion > 0
    expected = (prompt * 3 + completion * 15) / 1_000_000
    assert usage["cost"] == pytest.approx(expected, abs=1e-12)
    assert (usage["currency"], usage["unpriced_calls"]) == ("USD", 0)
