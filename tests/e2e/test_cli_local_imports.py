"""A local CLI command loads only what it uses: no HTTP client or server stack, no SDK
builder, and the start-up collector thresholds are restored before the command's work.

Each command runs through the console entry point (``kneo.cli.main:main``) in a fresh
process against a real SQLite project; the process reports its ``sys.modules`` at exit.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.cli_zygote import KNEO

REPO = Path(__file__).resolve().parents[2]

#: Modules a local run or resume must never load (the HTTP client, the service, the builder).
NOT_FOR_LOCAL = (
    "httpx2",
    "httpx",
    "uvicorn",
    "fastapi",
    "starlette",
    "kneo.cli.service_client",
    "kneo.service",
    "kneo.engine.builder",
    "kneo.engine.sdk_steps",
    "kneo.engine.sdk_workflow",
)

_PROBE = """
import atexit, gc, json, sys
out = sys.argv.pop(1)
def report():
    with open(out, "w") as fh:
        json.dump({"modules": sorted(sys.modules), "threshold": list(gc.get_threshold()),
                   "frozen": gc.get_freeze_count()}, fh)
atexit.register(report)
sys.argv[0] = "kneo"
from kneo.cli.main import main
main()
"""


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    shutil.copytree(
        REPO / "examples", tmp_path / "examples", ignore=shutil.ignore_patterns("__pycache__")
    )
    (tmp_path / ".kneo").mkdir()
    return tmp_path


def kneo(project: Path, *args: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(JSON output, {"modules", "threshold", "frozen"})`` of one fresh CLI process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KNEO")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["KNEO_SERV_PROFILES_PATH"] = str(project / "profiles.json")  # no active profile
    report = project / "report.json"
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, str(report), *args, "--json"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode in (0, 3), proc.stderr + proc.stdout  # 3: paused
    return json.loads(proc.stdout), json.loads(report.read_text())


def test_local_run_and_resume_load_no_http_stack(project: Path) -> None:
    paused, run_report = kneo(
        project, "run", "examples/human_approval_workflow.yaml", "--input", "launch"
    )
    assert paused["status"] == "paused"
    request = paused["metadata"]["pending_human_request"]["request_id"]
    done, resume_report = kneo(
        project, "human", "resume", paused["continuation_id"], "--request-id", request, "--approve"
    )
    assert done["status"] == "succeeded" and done["output_text"].startswith("Published.")
    for report in (run_report, resume_report):
        loaded = set(report["modules"])
        assert "kneo.platform.manager" in loaded  # the probe sees what the command imported
        assert not loaded & set(NOT_FOR_LOCAL), sorted(loaded & set(NOT_FOR_LOCAL))
        # start-up ran with a high collector threshold; the platform restored it once built
        assert report["threshold"][0] == 700 and report["frozen"] > 0


def test_a_service_url_in_the_project_config_still_selects_the_http_client(
    project: Path,
) -> None:
    """Deciding local versus HTTP without importing the client must not change the decision."""
    (project / ".kneo" / "config.yaml").write_text("service:\n  default_url: http://127.0.0.1:9/\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KNEO")}
    env["PYTHONPATH"] = str(REPO)
    env["KNEO_SERV_PROFILES_PATH"] = str(project / "profiles.json")
    env["KNEO_SERV_CLIENT_RETRIES"] = "0"
    proc = subprocess.run(
        [*KNEO, "human", "list", "--json"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    error = json.loads(proc.stdout)
    assert "127.0.0.1:9" in error["message"] and "Traceback" not in proc.stderr
