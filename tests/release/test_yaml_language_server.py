"""An editor finds Kneo's schemas: the real YAML language server (npm ``yaml-language-server``,
the one VS Code's YAML extension runs) follows the modeline ``kneo init`` writes and reports
an unknown field in a spec; the service serves the same schemas at ``/schemas/``.

The server speaks the Language Server Protocol over stdio: a few JSON-RPC messages (initialize,
open a document) and its ``textDocument/publishDiagnostics`` answer, read here as any editor
reads them.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from queue import Empty, Queue
from typing import IO, Any

import pytest
from fastapi.testclient import TestClient

from kneo.service.app import create_app
from kneo.settings import Settings
from tests.e2e.test_reset_and_init import kneo
from tests.npm_packages import node_modules_for, tool

HERE = Path(__file__).resolve().parent
#: An editor's settings: validation on, and no schema from the network's catalogue.
SETTINGS: dict[str, Any] = {"yaml": {"validate": True, "schemaStore": {"enable": False}}}


class LanguageServer:
    """A stdio JSON-RPC peer: requests get ids, the server's own requests get empty answers."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        self.inbox: Queue[dict[str, Any]] = Queue()
        self.next_id = 0
        threading.Thread(target=self._read, args=(process.stdout,), daemon=True).start()

    def _read(self, stream: IO[bytes] | None) -> None:
        assert stream is not None
        while True:
            header = b""
            while not header.endswith(b"\r\n\r\n"):
                byte = stream.read(1)
                if not byte:
                    return
                header += byte
            length = int(header.split(b"Content-Length:")[1].split(b"\r\n")[0])
            self.inbox.put(json.loads(stream.read(length)))

    def send(self, message: dict[str, Any]) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        assert self.process.stdin is not None
        self.process.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.process.stdin.flush()

    def request(self, method: str, params: Any) -> Any:
        self.next_id += 1
        self.send({"id": self.next_id, "method": method, "params": params})
        return self.wait(lambda m: m.get("id") == self.next_id and "method" not in m)

    def wait(self, matches: Any, timeout: float = 60) -> dict[str, Any]:
        while True:
            try:
                message = self.inbox.get(timeout=timeout)
            except Empty:
                pytest.fail("the YAML language server did not answer in time", pytrace=False)
            if "method" in message and "id" in message:  # its request to us
                asks_settings = message["method"] == "workspace/configuration"
                items = message.get("params", {}).get("items", [])
                answer = [SETTINGS["yaml"]] * len(items) if asks_settings else None
                self.send({"id": message["id"], "result": answer})
            if matches(message):
                return message

    def diagnostics(self, path: Path) -> list[dict[str, Any]]:
        uri = path.as_uri()
        self.send(
            {
                "method": "textDocument/didOpen",
                "params": {
                    "textDocument": {
                        "uri": uri,
                        "languageId": "yaml",
                        "version": 1,
                        "text": path.read_text(),
                    }
                },
            }
        )
        found = self.wait(
            lambda m: (
                m.get("method") == "textDocument/publishDiagnostics" and m["params"]["uri"] == uri
            )
        )
        return list(found["params"]["diagnostics"])


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("editor")
    assert kneo(root, "init", "demo").returncode == 0
    return root / "demo"


@pytest.fixture(scope="module")
def server(project: Path) -> Iterator[LanguageServer]:
    modules = node_modules_for(HERE / "yaml_language_server")
    entry = modules / "yaml-language-server" / "bin" / "yaml-language-server"
    process = subprocess.Popen(
        [tool("node"), str(entry), "--stdio"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    peer = LanguageServer(process)
    try:
        peer.request(
            "initialize",
            {"processId": None, "rootUri": project.as_uri(), "capabilities": {}},
        )
        peer.send({"method": "initialized", "params": {}})
        peer.send({"method": "workspace/didChangeConfiguration", "params": {"settings": SETTINGS}})
        yield peer
    finally:
        process.kill()
        process.wait(timeout=10)


def test_the_language_server_reports_an_unknown_field(
    project: Path, server: LanguageServer
) -> None:
    spec = project / "specs" / "approval.yaml"
    assert server.diagnostics(spec) == []  # the spec kneo init wrote is valid
    wrong = project / "specs" / "typo.yaml"
    wrong.write_text(spec.read_text().replace("  system_prompt:", "  system_promt:", 1))
    found = server.diagnostics(wrong)
    messages = [d["message"] for d in found]
    assert any("system_promt" in m and "not allowed" in m for m in messages), messages
    (line,) = [d["range"]["start"]["line"] for d in found if "system_promt" in d["message"]]
    assert wrong.read_text().splitlines()[line].strip().startswith("system_promt:")


def test_the_service_serves_the_schemas_the_ids_name() -> None:
    client = TestClient(
        create_app(settings=Settings.from_env({}), start_worker=False)
    )  # no lifespan: no platform needed
    listed = client.get("/schemas").json()["schemas"]
    assert "spec.schema.json" in listed and "environment.schema.json" in listed
    for name in listed:
        answer = client.get(f"/schemas/{name}")
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("application/schema+json")
        assert answer.json()["$id"] == f"https://kneo.dev/schemas/{name}"
    missing = client.get("/schemas/..%2Fsettings.py")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
