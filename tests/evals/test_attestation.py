"""Eval results signed into a bundle: bound to its digest, covered by its signatures, and
refused when edited, exactly like an edited spec."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from kneo.bundle import EvalAttestation, Keyring, TrustedKey, verify_bundle
from kneo.errors import BundleError
from tests.evals.conftest import SPEC, SUITE, CliResult, break_the_prompt

Kneo = Callable[..., CliResult]
SECRET = "eval-signing-secret-not-for-output"


@pytest.fixture
def signed(project: Path, kneo: Kneo, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A prod bundle of the support agent with its passing eval result attached."""
    monkeypatch.setenv("KNEO_SERV_SPEC_SIGNING_KEY", SECRET)
    ran = kneo("eval", "run", SPEC, "--suite", SUITE, "--env", "prod", "--results", "r.json")
    assert ran.exit_code == 0, ran.stderr
    done = kneo(
        "spec",
        "bundle",
        "sign",
        SPEC,
        "-o",
        "b.json",
        "--approved-by",
        "ci",
        "--env",
        "prod",
        "--evals",
        "r.json",
    )
    assert done.exit_code == 0, done.stderr
    return project / "b.json"


def _verify(path: Path) -> object:
    keyring = Keyring([TrustedKey.hmac("default", SECRET.encode())])
    from datetime import UTC, datetime

    return verify_bundle(path.read_bytes(), keyring, now=datetime.now(UTC))


def test_the_attestation_is_in_the_bundle_and_verifies(signed: Path, kneo: Kneo) -> None:
    document = json.loads(signed.read_text())
    [attested] = document["evals"]
    assert attested["suite"] == "support-agent"
    assert attested["digest"] == document["digest"]
    assert attested["pass_rate"] == 1.0 and attested["passed"] == attested["total"] == 11
    verified = _verify(signed)
    found = verified.bundle.attestation("support-agent")  # type: ignore[attr-defined]
    assert isinstance(found, EvalAttestation) and found.regressions() == []
    shown = kneo("spec", "bundle", "verify", "b.json", "--json")
    assert shown.exit_code == 0, shown.stderr
    assert json.loads(shown.stdout)["evals"][0]["pass_rate"] == 1.0


@pytest.mark.parametrize(
    "edit",
    [
        lambda a: a.update(
            pass_rate=10 / 11,
            passed=10,
            cases=[{**a["cases"][0], "outcome": "failed"}, *a["cases"][1:]],  # type: ignore[index]
        ),
        lambda a: a.update(suite="another-suite"),
        lambda a: a["cases"].pop(),
    ],
    ids=["consistent-rewrite", "renamed", "case-dropped"],
)
def test_an_edited_attestation_is_refused_like_an_edited_bundle(
    signed: Path, edit: Callable[[dict[str, object]], None]
) -> None:
    document = json.loads(signed.read_text())
    edit(document["evals"][0])
    signed.write_text(json.dumps(document))
    with pytest.raises(BundleError) as caught:
        _verify(signed)
    assert caught.value.code in ("bundle_signature_invalid", "bundle_attestation_mismatch")


def test_a_tampered_attestation_fails_the_signature_check(signed: Path) -> None:
    document = json.loads(signed.read_text())
    document["evals"][0]["kneo_version"] = "9.9.9"
    signed.write_text(json.dumps(document))
    with pytest.raises(BundleError) as caught:
        _verify(signed)
    assert caught.value.code == "bundle_signature_invalid"


def test_a_result_for_another_digest_is_not_attached(
    project: Path, kneo: Kneo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KNEO_SERV_SPEC_SIGNING_KEY", SECRET)
    assert (
        kneo(
            "eval", "run", SPEC, "--suite", SUITE, "--env", "prod", "--results", "r.json"
        ).exit_code
        == 0
    )
    break_the_prompt(project)  # the spec changed after its suite ran
    done = kneo(
        "spec",
        "bundle",
        "sign",
        SPEC,
        "-o",
        "b.json",
        "--approved-by",
        "ci",
        "--env",
        "prod",
        "--evals",
        "r.json",
    )
    assert done.exit_code == 1
    assert "error[bundle_attestation_mismatch]" in done.stderr
    assert "not this bundle's digest" in done.stderr
    assert not (project / "b.json").exists()


def test_a_file_that_is_not_a_result_is_refused(
    project: Path, kneo: Kneo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KNEO_SERV_SPEC_SIGNING_KEY", SECRET)
    Path("r.json").write_text('{"kind": "Something"}')
    done = kneo(
        "spec", "bundle", "sign", SPEC, "-o", "b.json", "--approved-by", "ci", "--evals", "r.json"
    )
    assert done.exit_code == 1 and "error[bundle_malformed]" in done.stderr


def test_bundles_without_evals_keep_their_old_form(
    project: Path, kneo: Kneo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KNEO_SERV_SPEC_SIGNING_KEY", SECRET)
    assert (
        kneo("spec", "bundle", "sign", SPEC, "-o", "b.json", "--approved-by", "ci").exit_code == 0
    )
    assert "evals" not in json.loads(Path("b.json").read_text())
    assert kneo("spec", "bundle", "sign", "--cosign", "b.json").exit_code == 0
