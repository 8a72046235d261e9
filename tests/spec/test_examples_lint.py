"""Every YAML file shipped in examples/ is clean under the check a newcomer would run on it.

A spec lints clean with ``kneo spec lint`` (warnings fail it: a copied example must not teach
a warning); an overlay ``NAME.ENV.yaml`` lints clean as its base with ``--env ENV``; the
legacy spec kept for ``kneo spec migrate`` lints without an error once migrated (only the
tool-policy warnings every pre-v1 spec earns); the project config and
eval suites load. A new file in examples/ is linted without being listed here, and one this
test cannot classify fails it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from kneo.evals.suite import load_suite
from kneo.spec.project import load_project_config

from .conftest import CliResult

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
#: Kept unversioned on purpose (docs/examples.md: the input of ``kneo spec migrate``).
LEGACY = "legacy_agent.yaml"
PROJECT_CONFIG = "project_config.yaml"


def shipped() -> list[str]:
    return sorted(str(p.relative_to(EXAMPLES)) for p in EXAMPLES.rglob("*.yaml"))


def _overlay_base(name: str) -> tuple[str, str] | None:
    """``(base, env)`` when ``name`` is ``BASE.ENV.yaml`` beside a ``BASE.yaml``."""
    stem, _, _ = name.rpartition(".yaml")
    base, dot, env = stem.rpartition(".")
    if dot and "/" not in name and (EXAMPLES / f"{base}.yaml").exists():
        return f"{base}.yaml", env
    return None


def test_every_example_file_is_classified() -> None:
    files = shipped()
    assert len(files) > 20, files  # the glob found the examples
    assert LEGACY in files and PROJECT_CONFIG in files


@pytest.mark.parametrize("name", shipped())
def test_example_is_lint_clean(name: str, kneo: Callable[..., CliResult], tmp_path: Path) -> None:
    path = EXAMPLES / name
    if name.startswith("evals/"):
        assert load_suite(path).cases, f"{name}: an eval suite without cases"
        return
    if name == PROJECT_CONFIG:
        load_project_config(path)
        return
    args: list[str]
    if name == LEGACY:
        migrated = tmp_path / "migrated.yaml"
        done = kneo("spec", "migrate", str(path), "--output", str(migrated), cwd=EXAMPLES.parent)
        assert done.exit_code == 0, done
        args = [str(migrated)]
    elif (overlay := _overlay_base(name)) is not None:
        args = [str(EXAMPLES / overlay[0]), "--env", overlay[1]]
    else:
        args = [str(path)]
    result = kneo("spec", "lint", *args, "--json", cwd=EXAMPLES.parent)
    report = json.loads(result.stdout)
    if name == LEGACY:  # pre-v1 specs had no tool policy: lint says to add one, and that is all
        assert report["error_count"] == 0, report
        codes = {d["code"] for d in report["diagnostics"]}
        assert codes <= {"W_TOOL_POLICY_UNRESTRICTED", "W_NETWORK_WITHOUT_ALLOWED_DOMAINS"}, codes
        return
    assert result.exit_code == 0 and report["clean"], report
    assert report["warning_count"] == report["error_count"] == 0, f"{name}: {report}"
