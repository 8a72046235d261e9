"""`kneo config check-env` / scripts/validate_staging_env.py: one checker, findings by name
and line, documented exit codes, and never a value in the output."""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from kneo.envcheck import EnvFile, check_env
from kneo.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "deploy" / "production.env.example"


def codes(text: str, shape: str = "compose") -> list[str]:
    return [f.code for f in check_env(EnvFile.parse(text), shape).findings]  # type: ignore[arg-type]


def test_filled_example_is_clean_but_for_the_demo_key(
    filled_env: tuple[str, dict[str, str]],
) -> None:
    text, _ = filled_env
    report = check_env(EnvFile.parse(text))
    assert report.errors == 0, [f.render() for f in report.findings]
    assert [f.code for f in report.findings] == ["env_demo_keys"]


def test_kubernetes_secret_example_filled_in_is_clean() -> None:
    text = (
        ROOT / "deploy" / "kubernetes" / "overlays" / "example" / "secrets.env.example"
    ).read_text()
    text = re.sub(r"replace-with-[A-Z_]+", lambda _: secrets.token_hex(32), text)
    report = check_env(EnvFile.parse(text), "scale-out")
    assert report.findings == (), [f.render() for f in report.findings]


def test_example_as_shipped_names_every_placeholder() -> None:
    report = check_env(EnvFile.parse(EXAMPLE.read_text()))
    placeholders = [f for f in report.findings if f.code == "env_placeholder"]
    assert {f.variable for f in placeholders} == {
        "KNEO_SERV_API_KEYS",
        "KNEO_SERV_ADMIN_API_KEY",
        "KNEO_SERV_SPEC_SIGNING_KEY",
        "KNEO_SERV_DATABASE_URL",
        "POSTGRES_PASSWORD",
    }
    assert report.errors == len(placeholders) == 7  # three API keys


@pytest.mark.parametrize(
    ("edit", "code", "variable"),
    [
        (
            ("KNEO_SERV_AUTH_ENABLED=true", "KNEO_SERV_AUTH_ENABLED=false"),
            "env_auth_disabled",
            "KNEO_SERV_AUTH_ENABLED",
        ),
        (
            ("KNEO_SERV_DATABASE_URL=", "# KNEO_SERV_DATABASE_URL="),
            "env_database_missing",
            "KNEO_SERV_DATABASE_URL",
        ),
        (("postgresql+psycopg://", "postgresql://"), "env_invalid_value", "KNEO_SERV_DATABASE_URL"),
        # a port SQLAlchemy cannot read, and one out of range: a finding, never a crash
        (("@db:5432/", "@db:port/"), "env_invalid_value", "KNEO_SERV_DATABASE_URL"),
        (("@db:5432/", "@db:99999/"), "env_invalid_value", "KNEO_SERV_DATABASE_URL"),
        (
            ("postgresql+psycopg://kneo_serv:", "postgresql+psycopg://someone:"),
            "env_database_mismatch",
            "KNEO_SERV_DATABASE_URL",
        ),
        (
            ("KNEO_COMPOSE_TRUSTED_KEYS=", "# KNEO_COMPOSE_TRUSTED_KEYS="),
            "env_controller_keys_missing",
            "KNEO_COMPOSE_TRUSTED_KEYS",
        ),
        (("POSTGRES_DB=kneo_serv", "# POSTGRES_DB"), "env_missing", "POSTGRES_DB"),
        (
            ("KNEO_COMPOSE_API_PORT=8000", "KNEO_COMPOSE_API_PORT=80000"),
            "env_invalid_value",
            "KNEO_COMPOSE_API_PORT",
        ),
        (
            ("KNEO_SERV_AUTH_ENABLED=true", "KNEO_SERV_AUTH_ENABLED=maybe"),
            "env_invalid_value",
            "KNEO_SERV_AUTH_ENABLED",
        ),
        ((":viewer'\n", ":auditor'\n"), "env_invalid_value", "KNEO_SERV_API_KEYS"),
        (
            ("KNEO_SERV_AUTH_ENABLED=true", "KNEO_SERV_OTEL_RECORD_ARGUMENTS=true"),
            "env_records_payloads",
            "KNEO_SERV_OTEL_RECORD_ARGUMENTS",
        ),
        (
            ("COMPOSE_PROJECT_NAME=kneo", 'COMPOSE_PROJECT_NAME="kneo"'),
            "env_quoted_value",
            "COMPOSE_PROJECT_NAME",
        ),
        (
            ("KNEO_COMPOSE_API_PORT=8000", "KNEO_COMPOSE_API_PORT=8000 # local"),
            "env_inline_comment",
            "KNEO_COMPOSE_API_PORT",
        ),
        (
            (
                "KNEO_SERV_AUTH_ENABLED=true",
                "KNEO_SERV_AUTH_ENABLED=true\nKNEO_SERV_AUTH_ENABLED=true",
            ),
            "env_duplicate",
            "KNEO_SERV_AUTH_ENABLED",
        ),
    ],
)
def test_each_mistake_is_named(
    edit: tuple[str, str], code: str, variable: str, filled_env: tuple[str, dict[str, str]]
) -> None:
    text, _ = filled_env
    assert edit[0] in text
    report = check_env(EnvFile.parse(text.replace(edit[0], edit[1], 1)))
    found = [f for f in report.findings if f.code == code]
    assert found and found[0].variable == variable, [f.render() for f in report.findings]
    assert found[0].line is None or found[0].line > 0


def test_unknown_name_gets_a_did_you_mean() -> None:
    report = check_env(
        EnvFile.parse("KNEO_SERV_MAX_BODY_BYTE=5\nKNEO_COMPOSE_API_PROT=1\n"), "single"
    )
    messages = {f.variable: f.message for f in report.findings if f.code == "env_unknown_variable"}
    assert "did you mean KNEO_SERV_MAX_BODY_BYTES?" in messages["KNEO_SERV_MAX_BODY_BYTE"]
    assert "did you mean KNEO_COMPOSE_API_PORT?" in messages["KNEO_COMPOSE_API_PROT"]
    # a variable the file names for its own use (a webhook secret) is not a typo
    assert codes("KNEO_WEBHOOK_SECRET=" + "a" * 40 + "\n", "single") == ["env_auth_disabled"]


def test_weak_reused_and_role_findings() -> None:
    key = secrets.token_hex(32)
    text = f"KNEO_SERV_API_KEYS=alice:{key}:operator;bob:{key}:reviewer;carol:short:operator\n"
    found = codes(text, "single")
    assert "env_reused_secret" in found
    assert "env_weak_secret" in found
    assert "env_role_missing" not in found  # a single machine needs no role per caller
    assert "env_role_missing" in codes(text, "scale-out")


def test_shapes_differ_on_the_database() -> None:
    keys = f"KNEO_SERV_API_KEYS=op:{secrets.token_hex(20)}:operator\n"
    assert "env_database_missing" not in codes(keys, "single")
    assert "env_database_missing" in codes(keys, "scale-out")
    sqlite = keys + "KNEO_SERV_DATABASE_URL=sqlite:////data/kneo.sqlite\n"
    assert "env_database_sqlite" in codes(sqlite, "scale-out")
    assert "env_database_sqlite" not in codes(sqlite, "single")


def test_malformed_database_url_is_a_finding_on_its_line_without_the_password(
    tmp_path: Path, filled_env: tuple[str, dict[str, str]]
) -> None:
    text, values = filled_env
    env_file = tmp_path / "port.env"
    env_file.write_text(text.replace("@db:5432/", "@db:not-a-port/", 1))
    code, out = _cli(env_file, "--json")
    assert code == 1, out
    (finding,) = [
        f for f in json.loads(out)["findings"] if f["variable"] == "KNEO_SERV_DATABASE_URL"
    ]
    assert finding["code"] == "env_invalid_value"
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "DATABASE_URL=" in row)
    assert finding["line"] == line
    assert "internal_error" not in out
    assert not any(value in out for value in values.values())


def test_syntax_errors_never_echo_the_line() -> None:
    secret = secrets.token_hex(24)
    report = check_env(EnvFile.parse(f"# comment\n{secret}\nexport KNEO_ENV=prod\n"), "single")
    (syntax,) = [f for f in report.findings if f.code == "env_syntax"]
    assert syntax.line == 2
    assert secret not in json.dumps(report.to_dict())


def test_every_setting_name_is_known() -> None:
    """The checker knows a variable as soon as Settings reads it: no second list to update.
    Settings must read every variable unconditionally for this to hold."""
    source = (ROOT / "kneo" / "settings.py").read_text()
    literal = set(re.findall(r'"(KNEO_[A-Z0-9_]+)"', source))
    assert literal <= Settings.variable_names()
    assert "KNEO_SERV_MAX_BODY_BYTES" in Settings.variable_names()


def _cli(env_file: Path, *extra: str) -> tuple[int, str]:
    from typer.testing import CliRunner

    from kneo.cli.main import app

    result = CliRunner().invoke(app, ["config", "check-env", "--env-file", str(env_file), *extra])
    return result.exit_code, result.output


def _script(env_file: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "validate_staging_env.py"),
            "--env-file",
            str(env_file),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )


def test_cli_and_script_agree_exit_codes_and_never_print_a_secret(
    tmp_path: Path, filled_env: tuple[str, dict[str, str]]
) -> None:
    text, values = filled_env
    planted, weak = secrets.token_hex(32), "Zq7x!"
    bad = tmp_path / "bad.env"
    bad.write_text(
        text.replace("KNEO_SERV_AUTH_ENABLED=true", "KNEO_SERV_AUTH_ENABLE=true")
        + f"KNEO_SERV_MAX_BODY_BYTES=lots\nKNEO_SERV_API_KEY={weak}\n{planted}\n"
        + "OPENAI_API_KEY=replace-with-sk\n"
    )
    good = tmp_path / "good.env"
    good.write_text(text)
    secret_values = [*values.values(), planted, weak]

    code, out = _cli(bad)
    assert code == 1
    assert "did you mean KNEO_SERV_AUTH_ENABLED?" in out
    assert "error[env_invalid_value] line" in out and "KNEO_SERV_MAX_BODY_BYTES" in out
    assert "OPENAI_API_KEY: the value still holds a placeholder" in out
    assert not [v for v in secret_values if v in out]
    code, out = _cli(bad, "--json")
    report = json.loads(out)
    assert code == 1 and report["ok"] is False and report["errors"] >= 4
    assert not [v for v in secret_values if v in out]
    assert _cli(good)[0] == 0
    assert _cli(good, "--strict")[0] == 1  # the demo-key warning
    assert _cli(tmp_path / "missing.env")[0] == 2

    script = _script(bad)  # the tutorial's name: the same command, output and exit code
    assert script.returncode == 1
    assert script.stdout == _cli(bad)[1]
    assert _script(tmp_path / "missing.env").returncode == 2
