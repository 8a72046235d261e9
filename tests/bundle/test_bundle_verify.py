"""Verification: every way a bundle can be wrong fails with its own stable code."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from kneo.bundle import (
    Bundle,
    BundleSource,
    Keyring,
    SigningKey,
    cosign,
    dump_bundle,
    sign_bundle,
    spec_digest,
    verify_bundle,
)
from kneo.bundle.keys import TrustedKey
from kneo.errors import BundleError

from .conftest import NOW

SECRET = "k1-super-secret-value"


@pytest.fixture
def signed(spec: dict[str, Any], hmac_key: SigningKey, source: BundleSource) -> Bundle:
    return sign_bundle(
        spec,
        hmac_key,
        name="research_agent",
        environment="prod",
        approved_by="release-manager",
        approved_at=NOW,
        source=source,
    )


@pytest.fixture
def keyring(hmac_key: SigningKey) -> Keyring:
    return Keyring([hmac_key.trusted()])


def _edit(bundle: Bundle, change: Callable[[dict[str, Any]], None]) -> str:
    document = json.loads(dump_bundle(bundle))
    change(document)
    return json.dumps(document)


def _code(data: Any, keyring: Keyring, **kwargs: Any) -> str:
    with pytest.raises(BundleError) as info:
        verify_bundle(data, keyring, now=NOW, **kwargs)
    assert SECRET not in str(info.value) and SECRET not in json.dumps(info.value.to_dict())
    return info.value.code


def test_signed_bundle_verifies_from_bytes_text_object_and_model(
    signed: Bundle, keyring: Keyring
) -> None:
    text = dump_bundle(signed)
    for form in (text, text.encode(), json.loads(text), signed):
        verified = verify_bundle(form, keyring, now=NOW)
        assert verified.signer_key_ids == ("default",)
        assert verified.digest == spec_digest(signed.spec)
        assert verified.environment == "prod"


def test_one_character_changed_in_the_spec_fails(signed: Bundle, keyring: Keyring) -> None:
    text = dump_bundle(signed)
    tampered = text.replace("short answers", "short answerz", 1)
    assert tampered != text
    assert _code(tampered, keyring) == "bundle_digest_mismatch"


def test_spec_and_digest_rewritten_together_fail_the_signature(
    signed: Bundle, keyring: Keyring
) -> None:
    def change(d: dict[str, Any]) -> None:
        d["spec"]["agent"]["system_prompt"] = "Do anything."
        d["digest"] = spec_digest(d["spec"])

    assert _code(_edit(signed, change), keyring) == "bundle_signature_invalid"


@pytest.mark.parametrize(
    ("field", "value"),
    [("approved_by", "mallory"), ("environment", "dev"), ("name", "other")],
)
def test_signed_metadata_edited_fails(
    signed: Bundle, keyring: Keyring, field: str, value: str
) -> None:
    assert _code(_edit(signed, lambda d: d.update({field: value})), keyring) == (
        "bundle_signature_invalid"
    )


def test_wrong_hmac_secret_fails(signed: Bundle) -> None:
    assert _code(dump_bundle(signed), Keyring([TrustedKey.hmac("default", "k2")])) == (
        "bundle_signature_invalid"
    )


def test_unknown_key_id_fails(signed: Bundle) -> None:
    assert _code(dump_bundle(signed), Keyring([TrustedKey.hmac("other", SECRET)])) == (
        "bundle_unknown_key"
    )


def test_algorithm_not_matching_the_key_fails(signed: Bundle, ed_key: SigningKey) -> None:
    ed_trusted = ed_key.trusted()
    as_default = TrustedKey.ed25519("default", ed_trusted._public)  # type: ignore[arg-type]
    assert _code(dump_bundle(signed), Keyring([as_default])) == "bundle_alg_mismatch"


def test_ed25519_signature_verifies_and_another_key_fails(
    spec: dict[str, Any], ed_key: SigningKey, source: BundleSource, tmp_path: Any
) -> None:
    from kneo.bundle import generate_ed25519, load_signing_key

    bundle = sign_bundle(
        spec, ed_key, name="r", environment="prod", approved_by="a", approved_at=NOW, source=source
    )
    assert verify_bundle(dump_bundle(bundle), Keyring([ed_key.trusted()]), now=NOW)
    impostor = load_signing_key(generate_ed25519("ci", tmp_path / "other").private_path)
    assert _code(dump_bundle(bundle), Keyring([impostor.trusted()])) == "bundle_signature_invalid"


@pytest.mark.parametrize(
    ("not_before", "not_after"),
    [(None, NOW - timedelta(seconds=1)), (NOW + timedelta(days=1), None)],
    ids=["expired", "not-yet-valid"],
)
def test_key_outside_its_validity_window_fails(
    signed: Bundle, hmac_key: SigningKey, not_before: Any, not_after: Any
) -> None:
    ring = Keyring([hmac_key.trusted(not_before=not_before, not_after=not_after)])
    assert _code(dump_bundle(signed), ring) == "bundle_key_expired"


def test_validity_window_ends_are_inclusive(signed: Bundle, hmac_key: SigningKey) -> None:
    ring = Keyring([hmac_key.trusted(not_before=NOW, not_after=NOW)])
    assert verify_bundle(dump_bundle(signed), ring, now=NOW).signer_key_ids == ("default",)


def test_digest_that_does_not_match_its_spec_fails(signed: Bundle, keyring: Keyring) -> None:
    other = "sha256:" + "0" * 64
    assert _code(_edit(signed, lambda d: d.update(digest=other)), keyring) == (
        "bundle_digest_mismatch"
    )


@pytest.mark.parametrize(
    "mutate",
    [
        lambda text: text[: len(text) // 2],
        lambda text: "not json at all",
        lambda text: "",
        lambda text: "[1, 2]",
        lambda text: text.replace('"KneoSpecBundle"', '"SomethingElse"'),
        lambda text: text.replace('"version": "v1"', '"version": "v9"', 1),
        lambda text: text.replace(
            '"kind": "KneoSpecBundle",', '"kind": "KneoSpecBundle", "kind": "KneoSpecBundle",'
        ),
        lambda text: text.replace('"approved_by": "release-manager",', ""),
        lambda text: text.replace('"approved_by"', '"extra": 1, "approved_by"'),
        lambda text: text.replace('"hmac-sha256"', '"rsa-sha1"'),
        lambda text: text.replace('"digest": "sha256:', '"digest": "md5:'),
    ],
    ids=[
        "truncated",
        "non-json",
        "empty",
        "not-an-object",
        "wrong-kind",
        "wrong-version",
        "duplicate-member",
        "missing-field",
        "unknown-member",
        "unknown-alg",
        "bad-digest-form",
    ],
)
def test_malformed_bundles_fail(
    signed: Bundle, keyring: Keyring, mutate: Callable[[str], str]
) -> None:
    assert _code(mutate(dump_bundle(signed)), keyring) == "bundle_malformed"


def test_unsigned_bundle_fails(signed: Bundle, keyring: Keyring) -> None:
    assert _code(_edit(signed, lambda d: d.update(signatures=[])), keyring) == "bundle_unsigned"


def test_signature_value_that_is_not_base64_fails(signed: Bundle, keyring: Keyring) -> None:
    def change(d: dict[str, Any]) -> None:
        d["signatures"][0]["value"] = "!!not-base64!!"

    assert _code(_edit(signed, change), keyring) == "bundle_signature_invalid"


def test_cosigned_bundle_meets_a_two_signature_requirement(
    signed: Bundle, hmac_key: SigningKey, ed_key: SigningKey
) -> None:
    ring = Keyring([hmac_key.trusted(), ed_key.trusted()])
    assert _code(dump_bundle(signed), ring, required_signatures=2) == (
        "bundle_insufficient_signatures"
    )
    both = cosign(dump_bundle(signed), ed_key)
    verified = verify_bundle(dump_bundle(both), ring, now=NOW, required_signatures=2)
    assert verified.signer_key_ids == ("default", "ci")


def test_cosigning_again_with_the_same_key_does_not_add_a_signer(
    signed: Bundle, hmac_key: SigningKey
) -> None:
    again = cosign(signed, hmac_key)
    assert again.signatures == signed.signatures
    assert _code(dump_bundle(again), Keyring([hmac_key.trusted()]), required_signatures=2) == (
        "bundle_insufficient_signatures"
    )


def test_cosign_refuses_a_bundle_whose_spec_was_edited(signed: Bundle, ed_key: SigningKey) -> None:
    tampered = dump_bundle(signed).replace("short answers", "long answers")
    with pytest.raises(BundleError) as info:
        cosign(tampered, ed_key)
    assert info.value.code == "bundle_digest_mismatch"


def test_accepted_key_ids_narrow_the_keyring(signed: Bundle, keyring: Keyring) -> None:
    assert _code(dump_bundle(signed), keyring, accepted_key_ids=["ci"]) == (
        "bundle_key_not_accepted"
    )
    assert verify_bundle(dump_bundle(signed), keyring, now=NOW, accepted_key_ids=["default"])


def test_accepted_key_ids_never_add_a_key(signed: Bundle) -> None:
    """Naming a key id the verifier does not trust does not make it trusted."""
    ring = Keyring([TrustedKey.hmac("ci", "whatever")])
    assert _code(dump_bundle(signed), ring, accepted_key_ids=["default"]) == "bundle_unknown_key"


def test_unknown_extra_signer_does_not_hide_a_valid_one(
    signed: Bundle, keyring: Keyring, ed_key: SigningKey
) -> None:
    both = cosign(signed, ed_key)
    assert verify_bundle(dump_bundle(both), keyring, now=NOW).signer_key_ids == ("default",)


def test_a_bad_signature_from_a_trusted_key_fails_even_with_another_valid_one(
    signed: Bundle, hmac_key: SigningKey, ed_key: SigningKey
) -> None:
    both = cosign(signed, ed_key)
    ring = Keyring([hmac_key.trusted(), ed_key.trusted()])

    def change(d: dict[str, Any]) -> None:
        d["signatures"][1]["value"] = d["signatures"][0]["value"]

    with pytest.raises(BundleError) as info:
        verify_bundle(_edit(both, change), ring, now=NOW)
    assert info.value.code == "bundle_signature_invalid"


def test_required_signatures_below_one_is_a_programming_error(
    signed: Bundle, keyring: Keyring
) -> None:
    with pytest.raises(ValueError):
        verify_bundle(signed, keyring, now=NOW, required_signatures=0)
