"""Key generation, key files and keyrings with validity windows (rotation)."""

from __future__ import annotations

import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from kneo.bundle import (
    BundleSource,
    SigningKey,
    dump_bundle,
    generate_ed25519,
    load_keyring,
    load_public_key,
    load_signing_key,
    sign_bundle,
    verify_bundle,
)
from kneo.bundle.keys import Keyring, TrustedKey
from kneo.errors import BundleError

from .conftest import NOW


def _code(fn: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(BundleError) as info:
        fn(*args, **kwargs)
    return info.value.code


def test_generate_writes_a_0600_pkcs8_private_key_and_a_public_key(tmp_path: Path) -> None:
    generated = generate_ed25519("ci", tmp_path / "keys")
    assert generated.private_path == tmp_path / "keys" / "ci.key"
    assert stat.S_IMODE(generated.private_path.stat().st_mode) == 0o600
    assert generated.private_path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert generated.public_path.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    assert load_public_key(generated.public_path).fingerprint == generated.fingerprint


def test_generate_refuses_to_overwrite(tmp_path: Path) -> None:
    generate_ed25519("ci", tmp_path)
    before = (tmp_path / "ci.key").read_bytes()
    assert _code(generate_ed25519, "ci", tmp_path) == "bundle_key_exists"
    assert (tmp_path / "ci.key").read_bytes() == before


@pytest.mark.parametrize("key_id", ["", "../evil", "a b", "-x", "x" * 65])
def test_invalid_key_ids_are_refused(tmp_path: Path, key_id: str) -> None:
    assert _code(generate_ed25519, key_id, tmp_path) == "bundle_key_invalid"
    assert list(tmp_path.iterdir()) == []


def test_key_id_defaults_to_the_file_stem_and_can_be_overridden(tmp_path: Path) -> None:
    generated = generate_ed25519("ci", tmp_path)
    assert load_signing_key(generated.private_path).key_id == "ci"
    assert load_signing_key(generated.private_path, "ci-2026").key_id == "ci-2026"


def test_bad_key_files_are_refused_without_echoing_them(tmp_path: Path) -> None:
    generated = generate_ed25519("ci", tmp_path)
    garbage = tmp_path / "garbage.key"
    garbage.write_text("not a key")
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_path = tmp_path / "ec.key"
    ec_path.write_bytes(
        ec_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    encrypted = tmp_path / "enc.key"
    private = load_signing_key(generated.private_path)._private
    assert private is not None
    encrypted.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"pw"),
        )
    )
    for path in (garbage, ec_path, encrypted, generated.public_path, tmp_path / "missing.key"):
        with pytest.raises(BundleError) as info:
            load_signing_key(path)
        assert info.value.code == "bundle_key_invalid"
        assert "PRIVATE KEY" not in str(info.value)
    assert _code(load_public_key, generated.private_path) == "bundle_key_invalid"


def test_key_objects_never_print_secret_material(tmp_path: Path) -> None:
    hmac_key = SigningKey.hmac("default", "super-secret-hmac")
    ed = load_signing_key(generate_ed25519("ci", tmp_path).private_path)
    for text in (repr(hmac_key), repr(hmac_key.trusted()), repr(ed), repr(ed.trusted())):
        assert "super-secret-hmac" not in text and "PRIVATE" not in text
    assert hmac_key.trusted().describe()["fingerprint"] is None


def test_empty_hmac_secret_is_refused() -> None:
    assert _code(SigningKey.hmac, "default", "") == "bundle_key_missing"


def test_keyring_reads_pub_files_and_validity_index(tmp_path: Path) -> None:
    generate_ed25519("ci-2025", tmp_path)
    generate_ed25519("ci-2026", tmp_path)
    (tmp_path / "keyring.yaml").write_text(
        "keys:\n"
        "  ci-2025: {not_before: 2025-01-01T00:00:00Z, not_after: 2026-01-01T00:00:00Z}\n"
        "  ci-2026: {not_before: 2026-01-01T00:00:00Z}\n"
    )
    ring = load_keyring(tmp_path, hmac_secrets={"legacy": "s3cret"})
    assert ring.key_ids == ["ci-2025", "ci-2026", "legacy"]
    old = ring.get("ci-2025")
    assert old is not None and old.not_after == datetime(2026, 1, 1, tzinfo=UTC)
    assert not old.valid_at(NOW)
    new = ring.get("ci-2026")
    assert new is not None and new.valid_at(NOW)


def test_rotation_rejects_bundles_signed_by_the_retired_key(
    tmp_path: Path, spec: dict[str, Any], source: BundleSource
) -> None:
    keys = tmp_path / "keys"
    old = load_signing_key(generate_ed25519("ci-2025", keys).private_path)
    new = load_signing_key(generate_ed25519("ci-2026", keys).private_path)
    (keys / "keyring.yaml").write_text("keys:\n  ci-2025: {not_after: 2026-01-01T00:00:00Z}\n")
    ring = load_keyring(keys)
    args: dict[str, Any] = dict(
        name="r", environment="prod", approved_by="a", approved_at=NOW, source=source
    )
    by_new = sign_bundle(spec, new, **args)
    assert verify_bundle(dump_bundle(by_new), ring, now=NOW).signer_key_ids == ("ci-2026",)
    by_old = sign_bundle(spec, old, **args)
    assert _code(verify_bundle, dump_bundle(by_old), ring, now=NOW) == "bundle_key_expired"


@pytest.mark.parametrize(
    "index",
    [
        "keys:\n  nobody: {not_after: 2026-01-01T00:00:00Z}\n",
        "keys:\n  ci: {not_before: 2026-01-01T00:00:00Z, not_after: 2025-01-01T00:00:00Z}\n",
        "keys:\n  ci: {expires: 2026-01-01}\n",
        "keys: [unclosed\n",
    ],
    ids=["unknown-key", "window-reversed", "unknown-field", "bad-yaml"],
)
def test_bad_keyring_index_is_refused(tmp_path: Path, index: str) -> None:
    generate_ed25519("ci", tmp_path)
    (tmp_path / "keyring.yaml").write_text(index)
    assert _code(load_keyring, tmp_path) == "bundle_keyring_invalid"


def test_keyring_directory_must_exist_and_ids_must_be_unique(tmp_path: Path) -> None:
    assert _code(load_keyring, tmp_path / "missing") == "bundle_keyring_invalid"
    generate_ed25519("ci", tmp_path)
    assert _code(load_keyring, tmp_path, hmac_secrets={"ci": "x"}) == "bundle_keyring_invalid"
    key = TrustedKey.hmac("a", "x")
    assert _code(Keyring, [key, key]) == "bundle_keyring_invalid"


def test_ed25519_verification_refuses_what_cryptography_refuses(tmp_path: Path) -> None:
    """Signatures are verified with libsodium: the same answers as ``cryptography`` on good,
    edited, truncated and malleated (S + L) signatures."""
    import base64

    from cryptography.exceptions import InvalidSignature

    generate_ed25519("ci", tmp_path)
    signing = load_signing_key(tmp_path / "ci.key")
    trusted = load_public_key(tmp_path / "ci.pub")
    public = serialization.load_pem_public_key((tmp_path / "ci.pub").read_bytes())
    order = 2**252 + 27742317777372353535851937790883648493  # L, the group order
    raw = base64.b64decode(signing.sign(b"payload"))
    s = int.from_bytes(raw[32:], "little")
    candidates = {
        "good": raw,
        "edited": raw[:10] + bytes([raw[10] ^ 1]) + raw[11:],
        "truncated": raw[:63],
        "malleated": raw[:32] + (s + order).to_bytes(32, "little"),
        "empty": b"",
    }
    for name, sig in candidates.items():
        try:
            public.verify(sig, b"payload")  # an Ed25519PublicKey
            expected = True
        except (InvalidSignature, ValueError):
            expected = False
        value = base64.b64encode(sig).decode()
        assert trusted.verify(b"payload", value) is expected, name
        assert trusted.verify(b"other payload", value) is False, name
    assert trusted.verify(b"payload", "not base64!") is False
