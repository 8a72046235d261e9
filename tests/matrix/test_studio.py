"""``kneo-studio`` 0.9.0's review steps in every shape, through its own HTTP routes.

Studio is the original's backend-for-frontend that turns an n8n export into a spec and has
the platform review it. It needs Python 3.12 (its code uses 3.12 syntax), so it runs in a
virtual environment of its own made by a 3.12 interpreter found on this machine. Its default
project is bound, through a ``kneo-client`` profile, to the shape's URL and an operator's
key; the journey is Studio's: the import sources, an n8n import (a draft spec and its gap
cards), and the preview, where Studio has the platform validate the draft (``kneo-client``'s
``specs`` calls against the shape), which answers with the verdict of the shape's stored
policy for ``dev``.

Studio's test runs are not driven: before dispatching one, Studio reads ``version`` from
``/v1/healthz`` and refuses any platform below the original's ``kneo_serv`` 1.2.0. Kneo
reports its own version there and does not claim the original's number to pass that gate
(docs/deployment.md, "Every shape").
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.matrix.shapes import Shape
from tests.npm_packages import unavailable
from tests.pip_packages import venv_for
from tests.service.svc_helpers import KEYS, free_port

pytestmark = pytest.mark.slow

#: a chat trigger and an agent: the n8n export Studio's own examples start with
N8N_CHAT = {
    "name": "chat",
    "nodes": [
        {"id": "1", "name": "When chat message received", "type": "@n8n/n8n-nodes-langchain.chatTrigger",
         "typeVersion": 1, "position": [0, 0], "parameters": {}},
        {"id": "2", "name": "AI Agent", "type": "@n8n/n8n-nodes-langchain.agent", "typeVersion": 1,
         "position": [200, 0], "parameters": {"options": {"systemMessage": "Be brief."}}},
    ],
    "connections": {
        "When chat message received": {"main": [[{"node": "AI Agent", "type": "main", "index": 0}]]}
    },
}  # fmt: skip


def python312() -> str:
    """A working Python 3.12 (on PATH, else one pyenv installed)."""
    pyenv = sorted(Path.home().glob(".pyenv/versions/3.12.*/bin/python"))
    for candidate in (shutil.which("python3.12"), *map(str, pyenv)):
        if candidate is None:
            continue
        probe = subprocess.run(
            [candidate, "-c", "import sys; print(sys.version_info[:2] == (3, 12))"],
            capture_output=True,
            text=True,
        )
        if probe.stdout.strip() == "True":
            return candidate
    unavailable("no Python 3.12 interpreter (kneo-studio 0.9.0 needs one)")
    raise AssertionError  # unreachable: unavailable() raised


@pytest.fixture
def studio(shape: Shape, tmp_path: Path) -> Iterator[httpx2.Client]:
    """Studio on a free port, its default project bound to ``shape``."""
    python = venv_for(("kneo-studio==0.9.0",), base_python=python312())
    config = tmp_path / "config" / "kneo"
    config.mkdir(parents=True)
    (config / "client.toml").write_text(
        f'[matrix]\nurl = "{shape.url}"\napi_key = "{KEYS["operator"]}"\nauth_scheme = "bearer"\n'
    )
    (tmp_path / "project").mkdir()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KNEO_", "PYTHON"))}
    env.update(
        HOME=str(tmp_path),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        KNEO_STUDIO_DEFAULT_PROFILE="matrix",
        KNEO_STUDIO_DEFAULT_PLATFORM_ENVIRONMENT="dev",
        KNEO_STUDIO_PROJECT_ROOT=str(tmp_path / "project"),
        KNEO_STUDIO_DB_URL=f"sqlite:///{tmp_path / 'studio.db'}",
        KNEO_STUDIO_PORT=str(port),
    )
    log = tmp_path / "studio.log"
    proc = subprocess.Popen(
        [str(python.parent / "kneo-studio")],
        cwd=tmp_path / "project",
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    client = httpx2.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()[-2000:]
            try:
                if client.get("/api/readyz").status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.1)
        yield client
    finally:
        client.close()
        proc.terminate()
        proc.wait(timeout=20)


def test_studio_imports_and_the_platform_reviews_the_draft(
    shape: Shape, studio: httpx2.Client
) -> None:
    [project] = studio.get("/api/projects").json()
    assert (project["id"], project["binding_state"]) == ("default", "bound")
    [bound] = studio.get("/api/projects/default/environments").json()
    assert bound == {"alias": "default", "url": shape.url}
    sources = {s["id"]: s["status"] for s in studio.get("/api/import/sources").json()["sources"]}
    assert sources["n8n"] == "supported"
    imported = studio.post(
        "/api/projects/default/import/n8n", json={"raw": json.dumps(N8N_CHAT), "alias": "default"}
    )
    assert imported.status_code == 201, imported.text
    result: dict[str, Any] = imported.json()
    assert "system_prompt: Be brief." in result["spec_yaml"]
    assert result["gaps"] and all(g["ref"]["gap_id"] for g in result["gaps"])
    reviewed = studio.post(
        "/api/projects/default/specs/preview",
        json={"draft": result["draft"], "text": result["spec_yaml"], "alias": "default"},
    )
    assert reviewed.status_code == 200, reviewed.text
    verdict = reviewed.json()
    # the shape reviewed it under its stored policy for dev (kneo-client's journey stored
    # ``require_human_review``): a draft without a human step is refused, and Studio stops
    # before compiling
    assert verdict["ok"] is False
    [validated] = verdict["stages"]
    assert validated["stage"] == "validate" and validated["ok"] is False, verdict
    codes = [d["code"] for d in validated["detail"]["diagnostics"]]
    assert "E_POLICY_HUMAN_REVIEW_REQUIRED" in codes, codes
