"""The custom-tool tutorial's Python entry points and CI recipe, as printed.

The tutorial's factory code (``docs/extending.md`` holds it, ``examples/my_factory.py`` is
it) imports ``kneo.spec.SpecCompiler`` and ``kneo.service.factory``; CI lints
``examples/lookup_agent.yaml`` against the project's tool registry (``tool_registry`` in
``.kneo/config.yaml`` or ``--tools``); the service's default platform has an override hook.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

REPO = Path(__file__).resolve().parents[2]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KNEO")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return {**env, **extra}


def kneo(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kneo.cli.main", *args],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _code(source: str) -> str:
    """The code of a module without its docstring and comments, normalized by ``ast``."""
    tree = ast.parse(source)
    body = tree.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    return ast.unparse(ast.Module(body=body, type_ignores=[]))


def test_the_example_factory_is_the_documented_tutorial_code() -> None:
    doc = (REPO / "docs" / "extending.md").read_text()
    printed = re.search(r"```python\n(from kneo\.platform import PlatformManager.*?)```", doc, re.S)
    assert printed is not None
    assert _code(printed.group(1)) == _code((REPO / "examples" / "my_factory.py").read_text())


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
    import json

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
    flagged = kneo(tmp_path, "spec", command, spec, "--tools", "examples.my_tools:create_registry")
    assert flagged.returncode == 0, flagged.stdout + flagged.stderr


@pytest.mark.parametrize(
    ("ref", "why"),
    [
        ("examples.nope:create", "cannot be imported"),
        ("examples.my_tools:USERS", "neither a ToolRegistry nor callable"),
        ("examples.my_tools", "module:factory"),
        ("examples.my_tools:lookup_user", "failed: TypeError"),
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


def test_the_service_factory_override_hook(tmp_path: Path, monkeypatch: Any) -> None:
    """``set_platform_factory`` replaces what ``create_default_platform_manager()`` — and so
    ``create_app(configure_default_manager=True)`` — builds."""
    from examples.my_tools import create_registry
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
