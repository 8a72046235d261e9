"""The CLI journeys of the issue, run in-process through ``run_cli`` with real files and keys."""

from __future__ import annotations

import json
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest

from kneo.cli.main import app
from kneo.cli.output import run_cli, want_structured_errors

K1 = "k1-hmac-secret-do-not-print"
K2 = "k2-another-secret-value"

SPEC = """\
version: v1
agent:
  name: helper
  system_prompt: You help.
  model: {provider: dummy, name: dummy, temperature: 0.2}
"""


@dataclass
class Result:
    code: int
    out: str
    err: str


class Invoke(Protocol):
    def __call__(self, *args: str, secret: str | None = None) -> Result: ...


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("KNEO_ENV", "KNEO_PROJECT_CONFIG", "KNEO_SERV_SPEC_SIGNING_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".kneo").mkdir()
    (tmp_path / ".kneo" / "config.yaml").write_text(
        "version: v1\nname: demo\nenvironments:\n  dev: {}\n  staging: {}\n"
        "  prod:\n    policy_enforcement: {require_tool_permissions: true}\n"
    )
    (tmp_path / "agent.yaml").write_text(SPEC)
    return tmp_path


@pytest.fixture
def kneo(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Invoke:
    def invoke(*args: str, secret: str | None = None) -> Result:
        if secret is None:
            monkeypatch.delenv("KNEO_SERV_SPEC_SIGNING_KEY", raising=False)
        else:
            monkeypatch.setenv("KNEO_SERV_SPEC_SIGNING_KEY", secret)
        monkeypatch.setattr(sys, "argv", ["kneo", *args])
        want_structured_errors(None)
        code = run_cli(app)
        captured = capsys.readouterr()
        for value in (K1, K2):
            assert value not in captured.out and value not in captured.err
        return Result(code, captured.out, captured.err)

    return invoke


def _error_code(result: Result) -> str:
    assert result.code != 0
    if result.out.strip().startswith("{"):
        return str(json.loads(result.out)["error"])
    return result.err.split("]")[0].removeprefix("error[")


def test_hmac_sign_then_verify_with_right_and_wrong_secret(project: Path, kneo: Invoke) -> None:
    signed = kneo(
        "spec",
        "bundle",
        "sign",
        "agent.yaml",
        "-o",
        "out/agent.prod.json",
        "--approved-by",
        "release-manager",
        "--env",
        "prod",
        secret=K1,
    )
    assert signed.code == 0, signed.err
    assert kneo("spec", "bundle", "verify", "out/agent.prod.json", secret=K1).code == 0
    wrong = kneo("spec", "bundle", "verify", "out/agent.prod.json", secret=K2)
    assert _error_code(wrong) == "bundle_signature_invalid"
    missing = kneo("spec", "bundle", "verify", "out/agent.prod.json")
    assert _error_code(missing) == "bundle_key_missing"


def test_one_character_changed_fails_verification(project: Path, kneo: Invoke) -> None:
    kneo("spec", "bundle", "sign", "agent.yaml", "-o", "b.json", "--approved-by", "a", secret=K1)
    path = project / "b.json"
    path.write_text(path.read_text().replace("You help.", "You helP."))
    result = kneo("spec", "bundle", "verify", "b.json", "--json", secret=K1)
    assert _error_code(result) == "bundle_digest_mismatch"


def test_custom_key_env_variable(
    project: Path, kneo: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_SIGNING_SECRET", K2)
    assert (
        kneo(
            "spec",
            "bundle",
            "sign",
            "agent.yaml",
            "-o",
            "b.json",
            "--approved-by",
            "a",
            "--key-env",
            "MY_SIGNING_SECRET",
            "--key-id",
            "team",
        ).code
        == 0
    )
    assert kneo("spec", "bundle", "verify", "b.json", "--key-env", "MY_SIGNING_SECRET").code == 0
    doc = json.loads((project / "b.json").read_text())
    assert doc["signatures"][0]["key_id"] == "team"


def test_ed25519_generate_sign_verify_and_another_key_fails(project: Path, kneo: Invoke) -> None:
    assert kneo("keys", "generate", "ci", "--output-dir", "keys/").code == 0
    assert stat.S_IMODE((project / "keys" / "ci.key").stat().st_mode) == 0o600
    signed = kneo(
        "spec",
        "bundle",
        "sign",
        "agent.yaml",
        "-o",
        "b.json",
        "--approved-by",
        "a",
        "--env",
        "staging",
        "--key-file",
        "keys/ci.key",
        "--json",
    )
    assert signed.code == 0
    assert "PRIVATE KEY" not in signed.out
    private_pem = (project / "keys" / "ci.key").read_text()
    assert private_pem.splitlines()[1] not in signed.out
    out = json.loads(signed.out)
    assert out["environment"] == "staging" and out["signatures"] == [
        {"alg": "ed25519", "key_id": "ci"}
    ]
    assert kneo("spec", "bundle", "verify", "b.json", "--public-key", "keys/ci.pub").code == 0
    ok = kneo("spec", "bundle", "verify", "b.json", "--keyring", "keys/", "--json")
    assert ok.code == 0 and json.loads(ok.out)["signers"] == ["ci"]
    assert kneo("keys", "generate", "ci", "--output-dir", "other/").code == 0
    impostor = kneo("spec", "bundle", "verify", "b.json", "--public-key", "other/ci.pub")
    assert _error_code(impostor) == "bundle_signature_invalid"
    assert kneo("keys", "generate", "ops", "--output-dir", "ops/").code == 0
    unknown = kneo("spec", "bundle", "verify", "b.json", "--keyring", "ops/")
    assert _error_code(unknown) == "bundle_unknown_key"


def test_cosign_meets_required_signatures(project: Path, kneo: Invoke) -> None:
    kneo("keys", "generate", "ci", "--output-dir", "keys")
    kneo("keys", "generate", "sec", "--output-dir", "keys")
    kneo(
        "spec",
        "bundle",
        "sign",
        "agent.yaml",
        "-o",
        "b.json",
        "--approved-by",
        "a",
        "--key-file",
        "keys/ci.key",
    )
    short = kneo(
        "spec", "bundle", "verify", "b.json", "--keyring", "keys", "--required-signatures", "2"
    )
    assert _error_code(short) == "bundle_insufficient_signatures"
    assert (
        kneo("spec", "bundle", "sign", "--cosign", "b.json", "--key-file", "keys/sec.key").code == 0
    )
    both = kneo(
        "spec", "bundle", "verify", "b.json", "--keyring", "keys", "--required-signatures", "2"
    )
    assert both.code == 0, both.err


def test_environment_file_requirements_apply_on_verify(project: Path, kneo: Invoke) -> None:
    kneo("keys", "generate", "ci", "--output-dir", "keys")
    kneo(
        "spec",
        "bundle",
        "sign",
        "agent.yaml",
        "-o",
        "b.json",
        "--approved-by",
        "a",
        "--env",
        "staging",
        "--key-file",
        "keys/ci.key",
    )
    envs = project / "policy"
    envs.mkdir()
    (envs / "staging.yaml").write_text("accepted_key_ids: [release]\n")
    result = kneo(
        "spec", "bundle", "verify", "b.json", "--keyring", "keys", "--environments", "policy"
    )
    assert _error_code(result) == "bundle_key_not_accepted"


def test_sign_refuses_where_environment_file_is_stricter(project: Path, kneo: Invoke) -> None:
    """The project config alone passes prod; environments/prod.yaml makes it fail."""
    assert kneo("spec", "lint", "agent.yaml", "--env", "prod").code == 0
    (project / "environments").mkdir()
    (project / "environments" / "prod.yaml").write_text(
        "version: v1\npolicy_enforcement: {require_guardrails: true}\n"
    )
    lint = kneo("spec", "lint", "agent.yaml", "--env", "prod")
    assert lint.code == 1 and "E_POLICY_GUARDRAILS_REQUIRED" in lint.out + lint.err
    sign = kneo(
        "spec",
        "bundle",
        "sign",
        "agent.yaml",
        "-o",
        "b.json",
        "--approved-by",
        "a",
        "--env",
        "prod",
        secret=K1,
    )
    assert _error_code(sign) == "bundle_spec_rejected"
    assert not (project / "b.json").exists()
    assert (
        kneo(
            "spec",
            "bundle",
            "sign",
            "agent.yaml",
            "-o",
            "b.json",
            "--approved-by",
            "a",
            "--env",
            "dev",
            secret=K1,
        ).code
        == 0
    )


def test_sign_refuses_a_spec_with_validation_errors(project: Path, kneo: Invoke) -> None:
    (project / "bad.yaml").write_text("version: v1\nagent: {name: a, strategy: {type: nope}}\n")
    result = kneo(
        "spec", "bundle", "sign", "bad.yaml", "-o", "b.json", "--approved-by", "a", secret=K1
    )
    assert result.code != 0 and not (project / "b.json").exists()


def test_signing_records_the_git_commit(project: Path, kneo: Invoke) -> None:
    import git

    repo = git.Repo.init(project)
    repo.index.add(["agent.yaml"])
    commit = repo.index.commit("spec", author=git.Actor("t", "t@example.invalid"))
    assert (
        kneo(
            "spec", "bundle", "sign", "agent.yaml", "-o", "b.json", "--approved-by", "a", secret=K1
        ).code
        == 0
    )
    source = json.loads((project / "b.json").read_text())["source"]
    assert source == {"path": "agent.yaml", "commit": commit.hexsha}


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (
            ("spec", "bundle", "sign", "agent.yaml", "-o", "b.json", "--approved-by", "a"),
            "bundle_key_missing",
        ),
        (
            (
                "spec",
                "bundle",
                "sign",
                "agent.yaml",
                "-o",
                "b.json",
                "--approved-by",
                "a",
                "--key-file",
                "nope.key",
            ),
            "bundle_key_invalid",
        ),
        (
            (
                "spec",
                "bundle",
                "sign",
                "agent.yaml",
                "-o",
                "b.json",
                "--approved-by",
                "a",
                "--key-file",
                "x",
                "--key-env",
                "V",
            ),
            "invalid_request",
        ),
        (
            ("spec", "bundle", "verify", "missing.json", "--key-env", "KNEO_SERV_SPEC_SIGNING_KEY"),
            "not_found",
        ),
        (("spec", "bundle", "verify", "agent.yaml"), "bundle_malformed"),
        (("keys", "generate", "../x", "--output-dir", "keys"), "bundle_key_invalid"),
    ],
    ids=[
        "no-secret",
        "missing-key-file",
        "two-key-sources",
        "missing-bundle",
        "not-a-bundle",
        "bad-key-id",
    ],
)
def test_bad_input_is_one_line_with_a_stable_code(
    project: Path, kneo: Invoke, args: tuple[str, ...], code: str
) -> None:
    secret = K1 if args[2] == "verify" else None
    result = kneo(*args, secret=secret)
    assert _error_code(result) == code
    assert "Traceback" not in result.err and len(result.err.strip().splitlines()) == 1


def test_usage_error_without_required_sign_options(project: Path, kneo: Invoke) -> None:
    result = kneo("spec", "bundle", "sign", "agent.yaml", secret=K1)
    assert result.code == 2 and "--approved-by" in result.err


def test_keys_list_shows_fingerprints_and_windows(project: Path, kneo: Invoke) -> None:
    kneo("keys", "generate", "ci", "--output-dir", "keys")
    (project / "keys" / "keyring.yaml").write_text(
        "keys:\n  ci: {not_after: 2030-01-01T00:00:00Z}\n"
    )
    listed = kneo("keys", "list", "keys", "--json")
    [row] = json.loads(listed.out)["keys"]
    assert row["key_id"] == "ci" and row["fingerprint"].startswith("sha256:")
    assert row["not_after"] == "2030-01-01T00:00:00Z"


def test_cosign_cannot_change_what_the_first_signature_covers(project: Path, kneo: Invoke) -> None:
    kneo("keys", "generate", "ci", "--output-dir", "keys")
    kneo(
        "spec",
        "bundle",
        "sign",
        "agent.yaml",
        "-o",
        "b.json",
        "--approved-by",
        "a",
        "--env",
        "staging",
        "--key-file",
        "keys/ci.key",
    )
    before = (project / "b.json").read_text()
    usage = kneo(
        "spec", "bundle", "sign", "--cosign", "b.json", "--approved-by", "mallory", secret=K1
    )
    assert usage.code == 2
    other_env = kneo("spec", "bundle", "sign", "--cosign", "b.json", "--env", "prod", secret=K1)
    assert _error_code(other_env) == "bundle_environment_mismatch"
    assert (project / "b.json").read_text() == before
