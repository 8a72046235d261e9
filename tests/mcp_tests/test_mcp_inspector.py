"""The MCP Inspector (its CLI mode, ``@modelcontextprotocol/inspector`` from
``inspector/package-lock.json``) against the service's ``/mcp``, configured the way docs/mcp.md
tells a reader to: the API key as an ``Authorization: Bearer`` header.

With the header it lists Kneo's tools and calls one; without it, or with a wrong key, it stops
at once with the service's ``401`` message saying how to send a key (no OAuth flow to wait on).
Installed once per lock file by ``npm ci`` (tests/npm_packages.py); without node and npm the
test skips and says why, and with CI set it fails.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from kneo.service.mcp import TOOLS
from tests.mcp_tests.test_mcp_challenge import serving
from tests.mcp_tests.test_mcp_server import KEYS
from tests.npm_packages import node_modules_for, tool

PROJECT = Path(__file__).with_name("inspector")


def inspector(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    cli = node_modules_for(PROJECT) / "@modelcontextprotocol" / "inspector" / "cli" / "build"
    return subprocess.run(
        # ``mcp-inspector``, the package's bin: what ``npx @modelcontextprotocol/inspector`` runs
        [tool("node"), str(cli / "cli.js"), "--cli", url, "--transport", "http", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_inspector_cli_uses_kneo_with_a_bearer_key(tmp_path: Path) -> None:
    bearer = f"Authorization: Bearer {KEYS['viewer']}"
    with serving(tmp_path) as url:
        listed = inspector(url, "--method", "tools/list", "--header", bearer)
        called = inspector(
            url, "--method", "tools/call", "--tool-name", "list_human_tasks", "--header", bearer
        )
        missing = inspector(url, "--method", "tools/list")
        wrong = inspector(url, "--method", "tools/list", "--header", "Authorization: Bearer nope")
    assert listed.returncode == 0, listed.stderr
    assert sorted(t["name"] for t in json.loads(listed.stdout)["tools"]) == sorted(
        t.name for t in TOOLS
    )
    assert called.returncode == 0, called.stderr
    assert json.loads(called.stdout)["structuredContent"]["tasks"] == []
    for refused, message in ((missing, "Missing API key"), (wrong, "Invalid API key")):
        assert refused.returncode != 0
        assert "unauthorized" in refused.stdout + refused.stderr
        assert message in refused.stdout + refused.stderr
    assert "Authorization: Bearer <key>" in missing.stdout + missing.stderr
