"""The custom-tool tutorial's Python entry points and CI recipe, as printed.

The tutorial's factory code (``docs/tutorial_custom_tool.md`` prints it,
``examples/my_factory.py`` is it) imports ``kneo.spec.SpecCompiler`` and
``kneo.service.factory``; CI lints ``examples/lookup_agent.yaml`` against the project's tool
registry (``tool_registry`` in ``.kneo/config.yaml`` or ``--tools``); a broken registry fails
what needs tools and only warns elsewhere; the service's default platform has an override
hook.
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
from fastapi.testclient import TestClient

from tests.cli_zygote import KNEO

REPO = Path(__file__).resolve().parents[2]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KNEO")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return {**env, **extra}


def kneo(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*KNEO, *args],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_printed_factory_runs_the_lookup_agent(tmp_path: Path) -> None:
    """``build_platform()`` as printed: its compiler knows ``lookup_user``, its worker runs a
    queued run, and the spec runs to the tool's answer."""
    code = (
        "import json\n"
        "from examples.my_factory import build_platform\n"
        f"spec = {str(REPO / 'examples' / 'lookup_agent.yaml')!r}\n"
        "m = build_platform()\n"
        "done = m.run_from_spec(input_text='u-002?', spec_path=spec, target='workflow')\n"
        "queued = m.start_run_from_spec(input_text='again', spec_path=spec)\n"
        "import time\n"
        "deadline = time.monotonic() + 30\n"
        "while m.get_run_result(queued.run_id).status == 'queued' and time.monotonic() < deadline:\n"
        "    time.sleep(0.05)\n"
        "m.stop_worker()\n"
        "print(json.dumps({'out': done.output_text,\n"
        "  'queued': m.get_run_result(queued.run_id).status,\n"
        "  'tools': m.compiler.tool_registry.names()}))\n"
    )
    (tmp_path / ".kneo").mkdir()
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=_env(), capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr

    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["out"] == "The email for u-002 is bob@example.com."
    assert out["queued"] == "succeeded"  # the worker the printed code starts ran it
    assert "lookup_user" in out["tools"] and "web_search" in out["tools"]


def test_ci_lints_the_lookup_agent_with_the_project_tool_registry() -> None:
    """In this repository the project config names the registry: no flag needed."""
    result = kneo(REPO, "spec", "lint", "examples/lookup_agent.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    # no --env: the default environment's policy applies and the output says no overlay did
    assert "lookup_agent.yaml: clean (env dev policy; no overlay without --env)" in result.stdout


@pytest.mark.parametrize("command", ["validate", "lint", "compile", "policy-report"])
def test_tools_flag_on_every_spec_command(tmp_path: Path, command: str) -> None:
    """A project without ``tool_registry``: ``E_UNKNOWN_TOOL`` until ``--tools`` names it."""
    (tmp_path / ".kneo").mkdir()
    (tmp_path / ".kneo" / "config.yaml").write_text("version: v1\n")
    spec = str(REPO / "examples" / "lookup_agent.yaml")
    bare = kneo(tmp_path, "spec", command, spec)
    assert bare.returncode == 1 and "E_UNKNOWN_TOOL" in bare.stdout + bare.stderr
    flagged = kneo(
        tmp_path, "spec", command, spec, "--tools", "examples.project_tools:create_registry"
    )
    assert flagged.returncode == 0, flagged.stdout + flagged.stderr


@pytest.mark.parametrize(
    ("ref", "why"),
    [
        ("examples.nope:create", "cannot be imported"),
        ("examples.project_tools:USERS", "neither a ToolRegistry nor callable"),
        ("examples.project_tools", "module:factory"),
        ("examples.project_tools:lookup_user", "failed: TypeError"),
    ],
)
def test_a_bad_tool_factory_is_one_clear_error(tmp_path: Path, ref: str, why: str) -> None:
    (tmp_path / ".kneo").mkdir()
    result = kneo(
        tmp_path, "spec", "validate", str(REPO / "examples/lookup_agent.yaml"), "--tools", ref
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error[E_TOOL_FACTORY]") and why in result.stderr
    assert "Traceback" not in result.stderr


def test_a_broken_project_registry_fails_only_what_needs_tools(tmp_path: Path) -> None:
    """The reported trap: the tutorial's ``my_tools.py`` pasted over a module the config names
    as ``tool_registry``. Reading stored state warns and works; validating, running and
    resuming fail with one clear ``E_TOOL_FACTORY`` line and a hint."""
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    (tmp_path / ".kneo").mkdir()
    (tmp_path / ".kneo" / "config.yaml").write_text("version: v1\n")
    paused = kneo(tmp_path, "run", "examples/smoke_human_workflow.yaml", "-i", "x", "--json")
    assert paused.returncode == 0, paused.stderr
    started = json.loads(paused.stdout)
    (tmp_path / ".kneo" / "config.yaml").write_text(
        "version: v1\ntool_registry: examples.my_tools:create_registry\n"
    )
    for read in (["human", "list"], ["runs", "get", started["run_id"]], ["runs", "list"]):
        result = kneo(tmp_path, *read)
        assert result.returncode == 0, result.stderr
        assert result.stderr.startswith("warning: tool registry factory")
        assert "'create_registry' is not defined in module 'examples.my_tools'" in result.stderr
    resume = ["--request-id", started["request_id"], "--approve"]
    for needs_tools in (
        ["spec", "validate", "examples/lookup_agent.yaml"],
        ["run", "examples/smoke_human_workflow.yaml", "-i", "x"],
        ["human", "resume", started["continuation_id"], *resume],
    ):
        result = kneo(tmp_path, *needs_tools)
        assert result.returncode == 1
        error, hint = result.stderr.splitlines()[-2:]
        assert error.startswith("error[E_TOOL_FACTORY]: tool registry factory"), result.stderr
        assert hint.startswith("hint: fix the module or the name in tool_registry")
    after = kneo(tmp_path, "runs", "get", started["run_id"], "--json")
    assert json.loads(after.stdout)["status"] == "paused"  # the refused resume changed nothing


def test_the_service_factory_override_hook(tmp_path: Path, monkeypatch: Any) -> None:
    """``set_platform_factory`` replaces what ``create_default_platform_manager()`` — and so
    ``create_app(configure_default_manager=True)`` — builds."""
    from examples.project_tools import create_registry
    from kneo.platform import create_platform
    from kneo.service.app import create_app
    from kneo.service.factory import create_default_platform_manager, set_platform_factory
    from kneo.settings import Settings
    from kneo.spec.project import ProjectContext

    settings = Settings.from_env({})
    project = ProjectContext.discover(cwd=tmp_path, settings=settings)
    built: list[Any] = []

    def factory() -> Any:
        manager = create_platform(settings, project, tool_registry=create_registry())
        built.append(manager)
        return manager

    set_platform_factory(factory)
    try:
        assert create_default_platform_manager() is built[0]
        with TestClient(create_app(settings=settings, start_worker=False)) as client:
            names = client.get("/readyz").json()["metadata"]["checks"]["tool_registry"]["names"]
        assert "lookup_user" in names and len(built) == 2
    finally:
        set_platform_factory(None)
        for manager in built:
            manager.store.close()
    default = create_default_platform_manager(settings)
    try:
        assert default is not built[-1]
    finally:
        default.store.close()
