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


def test_recorded_results_verify_under_the_environments_key_rules(
    project: Path, kneo: Kneo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``kneo eval sign``'s file verifies with the bundle's keyring and rules: a key the
    environment does not accept, or too few signers, refuses it; a repeated JSON member or a
    result for another bundle is refused with its own code."""
    from datetime import UTC, datetime

    from kneo.bundle import parse_bundle
    from kneo.bundle.eval_results import verify_eval_results

    monkeypatch.setenv("KNEO_SERV_SPEC_SIGNING_KEY", SECRET)
    assert kneo("eval", "run", SPEC, "--suite", SUITE, "--env", "prod", "--results", "r.json")
    for env in ("prod", "dev"):
        args = ["-o", f"{env}.json", "--approved-by", "ci", "--env", env]
        assert kneo("spec", "bundle", "sign", SPEC, *args).exit_code == 0
    done = kneo("eval", "sign", "--bundle", "prod.json", "--evals", "r.json", "--recorded-by", "ci")
    assert done.exit_code == 0, done.stderr
    raw = (project / "evals" / "prod.json").read_bytes()
    bundle, _ = parse_bundle((project / "prod.json").read_bytes())
    keyring = Keyring([TrustedKey.hmac("default", SECRET.encode())])
    now = datetime.now(UTC)
    results, signers = verify_eval_results(raw, bundle, keyring, now=now)
    [attested] = results.evals
    assert signers == ("default",)
    assert attested.pass_rate == 1.0 and attested.digest == bundle.digest
    refusals = {
        "bundle_key_not_accepted": lambda: verify_eval_results(
            raw, bundle, keyring, now=now, accepted_key_ids=["release"]
        ),
        "bundle_insufficient_signatures": lambda: verify_eval_results(
            raw, bundle, keyring, now=now, required_signatures=2
        ),
        "eval_results_malformed": lambda: verify_eval_results(
            raw.replace(b'"kind":', b'"kind": "x", "kind":', 1), bundle, keyring, now=now
        ),
        "eval_results_mismatch": lambda: verify_eval_results(
            raw, parse_bundle((project / "dev.json").read_bytes())[0], keyring, now=now
        ),
    }
    for code, attempt in refusals.items():
        with pytest.raises(BundleError) as caught:
            attempt()
        assert caught.value.code == code, caught.value.message
    # a result for another digest is refused when signing, too
    break_the_prompt(project)
    args = ["-o", "new.json", "--approved-by", "ci", "--env", "prod"]
    assert kneo("spec", "bundle", "sign", SPEC, *args).exit_code == 0
    other = kneo("eval", "sign", "--bundle", "new.json", "--evals", "r.json", "--recorded-by", "ci")
    assert other.exit_code == 1 and "error[bundle_attestation_mismatch]" in other.stderr
