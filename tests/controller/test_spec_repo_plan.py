"""The spec repository workflow's plan step (.github/workflows/spec-repo.yml), run as GitHub
would run it: its script with bash in a spec repository, ``kneo`` on PATH, against a local
server speaking GitHub's REST API for issue comments (list, create, update)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from gitops_fixtures import ENV_FILES, Keys, Repo, spec

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "spec-repo.yml"
TOKEN = "ghs_test-token-for-the-plan-step"


class Comments(BaseHTTPRequestHandler):
    """``/repos/{owner}/{repo}/issues/{n}/comments`` and ``/issues/comments/{id}``."""

    store: dict[int, dict[str, Any]] = {}
    seen: list[tuple[str, str]] = []

    def _answer(self, status: int, data: Any) -> None:
        body = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _authorized(self) -> bool:
        self.seen.append((self.command, self.path))
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._answer(401, {"message": "Bad credentials"})
            return False
        return True

    def _body(self) -> dict[str, Any]:
        return dict(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))

    def do_GET(self) -> None:
        if self._authorized():
            self._answer(200, sorted(self.store.values(), key=lambda c: c["id"]))

    def do_POST(self) -> None:
        if self._authorized():
            comment = {"id": 100 + len(self.store), "body": self._body()["body"]}
            self.store[comment["id"]] = comment
            self._answer(201, comment)

    def do_PATCH(self) -> None:
        if self._authorized():
            number = int(self.path.rsplit("/", 1)[1])
            self.store[number]["body"] = self._body()["body"]
            self._answer(200, self.store[number])

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def github() -> Iterator[tuple[str, type[Comments]]]:
    Comments.store = {1: {"id": 1, "body": "LGTM"}}
    Comments.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Comments)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", Comments
    server.shutdown()
    server.server_close()


def _step(name: str) -> str:
    jobs = yaml.safe_load(WORKFLOW.read_text())["jobs"]
    [step] = [s for s in jobs["specs"]["steps"] if s.get("name") == name]
    return str(step["run"])


def test_a_pull_request_gets_one_plan_comment_updated_on_each_push(
    tmp_path: Path, github: tuple[str, type[Comments]]
) -> None:
    api, comments = github
    keys = Keys(tmp_path / "keys")
    repo = Repo(tmp_path / "git")
    for env, text in ENV_FILES.items():
        repo.write(f"environments/{env}.yaml", text)
    repo.write("keys/ci.pub", (keys.trusted_dir / "ci.pub").read_bytes())
    for env in ENV_FILES:
        repo.write(f"bundles/helper/{env}.json", keys.bundle("helper", env, spec("v1")))
    base = repo.commit("v1")
    repo.git("checkout", "--quiet", "-b", "release")
    for env in ENV_FILES:
        repo.write(f"bundles/helper/{env}.json", keys.bundle("helper", env, spec("v2")))
    repo.commit("v2", push=False)
    summary = tmp_path / "summary.md"
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "BASE": base,
        "PR_NUMBER": "7",
        "GITHUB_TOKEN": TOKEN,
        "GITHUB_API_URL": api,
        "GITHUB_REPOSITORY": "acme/specs",
        "RUNNER_TEMP": str(tmp_path),
        "GITHUB_STEP_SUMMARY": str(summary),
        "TRUSTED_KEYS": "keys",
    }
    for name in ("KNEO_SERV_DATABASE_URL", "KNEO_PROFILE", "KNEO_SERV_SERVICE_URL"):
        env.pop(name, None)

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", _step("Plan the merge")],
            cwd=repo.work,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    done = run()
    assert done.returncode == 0, done.stderr
    [mine] = [c for c in comments.store.values() if c["id"] != 1]
    assert mine["body"].startswith("<!-- kneo-plan -->\n## Kneo plan: `" + base[:12])
    assert "### dev" in mine["body"] and "### prod" in mine["body"]
    assert "**3 change(s)**, **0 refused**" in mine["body"]
    assert summary.read_text() == mine["body"]
    assert ("POST", "/repos/acme/specs/issues/7/comments") in comments.seen

    # the next push: a bundle signed by a key the controllers do not trust
    repo.write(
        "bundles/helper/prod.json", keys.bundle("helper", "prod", spec("v3"), key=keys.forged)
    )
    repo.commit("v3", push=False)
    done = run()
    assert done.returncode == 1, done.stderr
    assert len(comments.store) == 2  # updated in place, not a second comment
    body = comments.store[mine["id"]]["body"]
    assert "**1 refused**" in body and "❌ rejected" in body and "bundle_signature_invalid" in body
    assert comments.seen[-1] == ("PATCH", f"/repos/acme/specs/issues/comments/{mine['id']}")
    assert comments.store[1]["body"] == "LGTM"
    assert TOKEN not in done.stdout + done.stderr
