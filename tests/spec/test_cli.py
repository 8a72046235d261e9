"""``kneo spec`` and ``kneo config`` as a user meets them: exit codes, one-line errors, JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.cli_zygote import KNEO

from .conftest import EXAMPLE_SPECS, EXAMPLES, REPO, CliResult, write_yaml

Kneo = Callable[..., CliResult]
RESEARCH = str(EXAMPLES / "research_agent.yaml")


def test_validate_examples_locally_and_for_prod(kneo: Kneo) -> None:
    ok = kneo("spec", "validate", RESEARCH, cwd=REPO)
    assert ok.exit_code == 0, ok.stderr
    assert "valid" in ok.stdout
    prod = kneo("spec", "validate", RESEARCH, "--env", "prod", "--json", cwd=REPO)
    assert prod.exit_code == 0, prod.stdout
    body = json.loads(prod.stdout)
    assert set(body) == {"valid", "diagnostics", "report"} and body["valid"] is True
    assert body["report"]["agent_name"] == "research-copilot"
    assert body["report"]["environment"] == "prod"


def test_kneo_env_selects_the_overlay(kneo: Kneo, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KNEO_ENV", "dev")
    result = kneo("spec", "compile", RESEARCH, "--json", cwd=REPO)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["workflow"]["steps"][0]["model"] == "dummy/dummy-fast"


@pytest.mark.parametrize("path", EXAMPLE_SPECS, ids=[p.stem for p in EXAMPLE_SPECS])
def test_compile_every_example(kneo: Kneo, path: Path) -> None:
    result = kneo("spec", "compile", str(path), cwd=REPO)
    assert result.exit_code == 0, result.stderr
    assert "compiled" in result.stdout


def test_unknown_tool_fails_validation(kneo: Kneo, tmp_path: Path) -> None:
    spec = write_yaml(
        tmp_path / "s.yaml", {"version": "v1", "agent": {"name": "a", "tools": ["teleport"]}}
    )
    result = kneo("spec", "validate", str(spec), "--json", cwd=tmp_path)
    assert result.exit_code == 1
    body = json.loads(result.stdout)
    assert body["valid"] is False
    assert {
        "code": "E_UNKNOWN_TOOL",
        "path": "agent.tools[0]",
        "severity": "error",
    }.items() <= body["diagnostics"][0].items()
    human = kneo("spec", "validate", str(spec), cwd=tmp_path)
    assert human.exit_code == 1 and "E_UNKNOWN_TOOL agent.tools[0]" in human.stdout


def test_broken_yaml_is_one_line_without_traceback(tmp_path: Path) -> None:
    spec = write_yaml(tmp_path / "broken.yaml", "version: v1\nagent:\n  name: [unclosed\n")
    result = subprocess.run(
        [*KNEO, "spec", "validate", str(spec)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error[E_YAML]: {spec}:")


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["spec", "validate", "missing.yaml"], "E_FILE_NOT_FOUND"),
        (["spec", "validate", RESEARCH, "--env", "qa"], "E_UNKNOWN_ENV"),
        (["spec", "lint", str(EXAMPLES / "legacy_agent.yaml")], "E_UNSUPPORTED_VERSION"),
    ],
    ids=["missing-file", "unknown-env", "unversioned"],
)
def test_bad_input_is_one_line_with_a_code(kneo: Kneo, args: list[str], code: str) -> None:
    result = kneo(*args, cwd=REPO)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error[{code}]:") and result.stderr.count("\n") == 1


def test_json_errors_print_the_envelope(kneo: Kneo, tmp_path: Path) -> None:
    spec = write_yaml(tmp_path / "s.yaml", "version: v1\nagent:\n  name: a\n  colour: red\n")
    result = kneo("spec", "validate", str(spec), "--json", cwd=tmp_path)
    assert result.exit_code == 1
    body = json.loads(result.stdout)
    assert body["error"] == "E_SCHEMA" and body["path"] == "agent.colour" and body["line"] == 4


def test_usage_errors_exit_2(kneo: Kneo, tmp_path: Path) -> None:
    assert kneo("spec", "validate", "--no-such-flag", cwd=tmp_path).exit_code == 2
    no_default = kneo("spec", "validate", cwd=tmp_path)  # no path and no project default_spec
    assert no_default.exit_code == 2 and no_default.stderr.startswith("error[usage_error]")


def test_a_misspelt_command_names_the_one_meant(kneo: Kneo, tmp_path: Path) -> None:
    """At the root too, where command modules load only when run (the lazy group)."""
    for args, typo, meant in (
        (["humna", "list"], "humna", "'human'"),
        (["rns", "list"], "rns", "'runs', 'run'"),
        (["human", "lst"], "lst", "'list'"),
    ):
        result = kneo(*args, cwd=tmp_path)
        assert result.exit_code == 2
        assert f"No such command '{typo}'. Did you mean {meant}?" in result.stderr, result.stderr
    unlike = kneo("zzzz", cwd=tmp_path)
    assert unlike.exit_code == 2 and "No such command 'zzzz'.\n" in unlike.stderr


def test_default_spec_from_project_config(kneo: Kneo) -> None:
    result = kneo("spec", "validate", "--env", "prod", cwd=REPO)
    assert result.exit_code == 0, result.stderr
    assert (
        "research_agent.yaml: valid (env prod, overlay research_agent.prod.yaml)" in result.stdout
    )


def test_lint_json_envelope_and_exit_code(kneo: Kneo, tmp_path: Path) -> None:
    clean = kneo("spec", "lint", RESEARCH, "--json", cwd=REPO)
    assert clean.exit_code == 0
    assert json.loads(clean.stdout) == {
        "clean": True,
        "warning_count": 0,
        "error_count": 0,
        "diagnostics": [],
    }
    spec = write_yaml(
        tmp_path / "s.yaml", {"version": "v1", "agent": {"name": "a", "tools": ["web_search"]}}
    )
    dirty = kneo("spec", "lint", str(spec), "--json", cwd=tmp_path)
    assert dirty.exit_code == 1
    body = json.loads(dirty.stdout)
    assert body["clean"] is False and body["error_count"] == 0 and body["warning_count"] == 2
    assert {d["code"] for d in body["diagnostics"]} == {
        "W_TOOL_POLICY_UNRESTRICTED",
        "W_NETWORK_WITHOUT_ALLOWED_DOMAINS",
    }
    assert all(d["severity"] != "info" for d in body["diagnostics"])
    # validate reports the same warnings but does not fail on them
    assert kneo("spec", "validate", str(spec), cwd=tmp_path).exit_code == 0


def test_policy_report(kneo: Kneo) -> None:
    result = kneo("spec", "policy-report", RESEARCH, "--env", "prod", "--json", cwd=REPO)
    assert result.exit_code == 0
    report = json.loads(result.stdout)["report"]
    assert report["human_approval"]["present"] is True
    assert report["policy"]["require_human_review"] is True
    text = kneo("spec", "policy-report", RESEARCH, cwd=REPO)
    assert text.exit_code == 0 and "research-copilot" in text.stdout


def test_resolve_and_render_spec_write_the_merged_yaml(kneo: Kneo, tmp_path: Path) -> None:
    out = tmp_path / "resolved.yaml"
    assert (
        kneo("spec", "resolve", RESEARCH, "--env", "staging", "-o", str(out), cwd=REPO).exit_code
        == 0
    )
    assert yaml.safe_load(out.read_text())["agent"]["model"]["name"] == "gpt-4o"
    rendered = tmp_path / "rendered.yaml"
    assert (
        kneo("config", "render-spec", "--env", "prod", "-o", str(rendered), cwd=REPO).exit_code == 0
    )
    data = yaml.safe_load(rendered.read_text())
    assert data["agent"]["model"]["temperature"] == 0.0 and data["agent"]["guardrails"]


def test_migrate_check_output_and_validate(kneo: Kneo, tmp_path: Path) -> None:
    legacy = str(EXAMPLES / "legacy_agent.yaml")
    check = kneo("spec", "migrate", legacy, "--check", "--json", cwd=tmp_path)
    assert check.exit_code == 1 and json.loads(check.stdout)["needs_migration"] is True
    out = tmp_path / "migrated_agent.yaml"
    assert kneo("spec", "migrate", legacy, "--output", str(out), cwd=tmp_path).exit_code == 0
    assert kneo("spec", "migrate", str(out), "--check", cwd=tmp_path).exit_code == 0
    assert kneo("spec", "validate", str(out), cwd=tmp_path).exit_code == 0
    future = write_yaml(tmp_path / "future.yaml", {"version": "v7", "agent": {"name": "a"}})
    assert kneo("spec", "migrate", str(future), cwd=tmp_path).stderr.startswith(
        "error[E_UNSUPPORTED_VERSION]"
    )


def test_config_init_then_show(kneo: Kneo, tmp_path: Path) -> None:
    assert kneo("config", "init", "--name", "demo", cwd=tmp_path).exit_code == 0
    shown = kneo("config", "show", "--json", cwd=tmp_path)
    assert shown.exit_code == 0
    assert json.loads(shown.stdout)["config"]["name"] == "demo"
    again = kneo("config", "init", "--name", "demo", cwd=tmp_path)
    assert again.exit_code == 1 and again.stderr.startswith("error[config_exists]")
    assert kneo("config", "init", "--name", "other", "--force", cwd=tmp_path).exit_code == 0
    assert (
        json.loads(kneo("config", "show", "--json", cwd=tmp_path).stdout)["config"]["name"]
        == "other"
    )


def test_config_show_without_a_project(kneo: Kneo, tmp_path: Path) -> None:
    result = kneo("config", "show", cwd=tmp_path)
    assert result.exit_code == 1 and result.stderr.startswith("error[project_config_not_found]")


def test_config_resolve(kneo: Kneo) -> None:
    result = kneo("config", "resolve", "--env", "prod", "--json", cwd=REPO)
    body = json.loads(result.stdout)
    assert body["environment"] == "prod" and body["overlays"][0].endswith(
        "research_agent.prod.yaml"
    )
    assert body["policy"]["deny_unrestricted_tools"] is True


def test_config_secrets_never_prints_values(kneo: Kneo, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-test-ABCDEFGHIJ0123456789"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    monkeypatch.setenv("KNEO_SERV_API_KEY", "operator-token-value")
    as_json = kneo("config", "secrets", "--env", "prod", "--json", cwd=REPO)
    text = kneo("config", "secrets", cwd=REPO)
    for result in (as_json, text):
        assert result.exit_code == 0
        assert secret not in result.stdout + result.stderr
        assert "operator-token-value" not in result.stdout + result.stderr
    inventory = json.loads(as_json.stdout)["inventory"]
    assert inventory["providers"]["openai"] == {
        "name": "provider:openai",
        "env_var": "OPENAI_API_KEY",
        "present": True,
        "value": "[REDACTED]",
    }
    assert inventory["service"]["cli_client"]["present"] is True
    assert inventory["extra"]["search_api"]["env_var"] == "SEARCH_API_KEY"
    assert "OPENAI_API_KEY" in text.stdout and "set" in text.stdout


@pytest.mark.parametrize(
    "args", [["--help"], ["spec", "lint", "examples/research_agent.yaml"]], ids=["help", "lint"]
)
def test_fast_paths_do_not_import_heavy_libraries(args: list[str]) -> None:
    code = (
        "import sys, io, contextlib\n"
        f"sys.argv = ['kneo', *{args!r}]\n"
        "from kneo.cli.output import run_cli\n"
        "from kneo.cli.main import app\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    rc = run_cli(app)\n"
        "print(rc, sorted(m for m in ('fastapi', 'sqlalchemy', 'openai', 'uvicorn', 'alembic') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert result.stdout.strip() == "0 []", result.stdout + result.stderr
