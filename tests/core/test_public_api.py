"""The public API: ``kneo.__all__`` is pinned, every name resolves, and importing ``kneo``
loads nothing until a name is used (httpx's ``test_exported_members`` is the model)."""

from __future__ import annotations

import json
import subprocess
import sys

import kneo

PUBLIC = [
    "BundleError",
    "BundleNotApproved",
    "ConfigError",
    "Conflict",
    "DatabaseUnavailable",
    "Decision",
    "ErrorCode",
    "Forbidden",
    "HumanDecision",
    "HumanInTheLoopStep",
    "HumanInterventionRequest",
    "HumanInterventionRequiredError",
    "HumanRequest",
    "IdempotencyConflict",
    "IllegalTransition",
    "InvalidDecision",
    "InvalidRequest",
    "KneoError",
    "NotFound",
    "NotReady",
    "PayloadTooLarge",
    "PlatformManager",
    "ProviderError",
    "RequestAlreadyResolved",
    "ResourceLocked",
    "RunResult",
    "ServiceClient",
    "ServiceError",
    "Settings",
    "SpecCompiler",
    "SpecError",
    "StepContext",
    "ToolDefinition",
    "ToolRegistry",
    "Unauthorized",
    "ValidationFailed",
    "VersionInfo",
    "WorkflowBuilder",
    "__version__",
    "create_app",
    "create_default_platform_manager",
    "create_platform",
    "create_tool_registry",
    "load_spec",
    "set_platform_factory",
    "set_platform_manager",
    "version_info",
]


def test_all_is_pinned() -> None:
    assert kneo.__all__ == PUBLIC


def test_every_exported_member_resolves_to_a_kneo_object() -> None:
    for name in kneo.__all__:
        member = getattr(kneo, name)
        assert member is not None, name
        if name != "__version__":
            assert member.__module__.startswith("kneo."), (name, member.__module__)
            assert member.__name__ == name, name  # exported under its own name, not an alias
    assert set(kneo.__all__) <= set(dir(kneo))
    listed = dir(kneo)  # every name loaded above: each still listed once
    assert len(listed) == len(set(listed))


def test_errors_are_one_tree() -> None:
    for name in kneo.__all__:
        member = getattr(kneo, name)
        if isinstance(member, type) and member.__module__ == "kneo.errors" and name != "ErrorCode":
            assert issubclass(member, kneo.KneoError), name
    assert {code for code in vars(kneo.ErrorCode) if not code.startswith("_")} >= {
        kneo.KneoError.code,
        kneo.DatabaseUnavailable.code,
    }  # the error table beside the tree: every class's code is a row


def test_an_unknown_name_is_an_attribute_error() -> None:
    try:
        kneo.no_such_thing  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:
        raise AssertionError("kneo.no_such_thing resolved")


def test_importing_kneo_loads_nothing_until_used() -> None:
    code = (
        "import json, sys\n"
        "import kneo\n"
        "idle = sorted(m for m in sys.modules if m.startswith('kneo.')\n"
        "  and m not in ('kneo.lazy', 'kneo.startup'))\n"
        "heavy = [m for m in ('sqlalchemy', 'fastapi', 'yaml', 'pydantic') if m in sys.modules]\n"
        "from kneo import HumanInterventionRequiredError, WorkflowBuilder\n"
        "print(json.dumps({'idle': idle, 'heavy': heavy,\n"
        "  'store': 'sqlalchemy' in sys.modules}))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(proc.stdout) == {"idle": [], "heavy": [], "store": False}


def test_the_readme_imports_from_the_public_api() -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Python API", 1)[1].split("\n## ", 1)[0]
    block = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert block.startswith("from kneo import ")
    exec(compile(block, "README.md", "exec"), {})  # names missing from kneo raise ImportError
