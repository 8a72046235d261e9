"""Signing keys (private side) and the keyring of trusted keys (verifying side).

Two algorithms:

* ``hmac-sha256``: a shared secret. Whoever can verify can also sign, so it suits a single
  trusted pipeline (the reference's ``KNEO_SERV_SPEC_SIGNING_KEY``).
* ``ed25519``: CI holds the private key (PKCS#8 PEM, mode 0600); controllers and services
  hold only public keys (SubjectPublicKeyInfo PEM).

A keyring directory holds ``<key_id>.pub`` files and, optionally, ``keyring.yaml`` giving
validity windows used for rotation::

    keys:
      ci-2025: {not_before: 2025-01-01T00:00:00Z, not_after: 2026-01-01T00:00:00Z}

Secrets never appear in ``repr``, messages or errors: the key objects print their id only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import nacl.bindings
import nacl.exceptions
import nacl.signing
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from pydantic import BaseModel, ConfigDict, ValidationError

from kneo.bundle.format import KEY_ID_PATTERN, Algorithm
from kneo.documents import load_yaml_file
from kneo.errors import BundleError, ErrorCode, SpecError

HMAC_SHA256: Algorithm = "hmac-sha256"
ED25519: Algorithm = "ed25519"
KEYRING_INDEX = "keyring.yaml"
PRIVATE_SUFFIX = ".key"
PUBLIC_SUFFIX = ".pub"
_KEY_ID = re.compile(KEY_ID_PATTERN)


def check_key_id(key_id: str) -> str:
    """Key ids name files and appear in bundles: letters, digits, ``.``, ``_``, ``-``."""
    if not _KEY_ID.match(key_id or ""):
        raise BundleError(
            f"invalid key id {key_id!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit",
            code=ErrorCode.bundle_key_invalid,
            key_id=key_id,
        )
    return key_id


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _unb64(value: str) -> bytes | None:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def _secret_bytes(secret: str | bytes) -> bytes:
    raw = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    if not raw:
        raise BundleError("the HMAC signing secret is empty", code=ErrorCode.bundle_key_missing)
    return raw


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass(frozen=True)
class SigningKey:
    """A key that can sign: an HMAC secret or an Ed25519 private key. Prints its id only."""

    alg: Algorithm
    key_id: str
    _secret: bytes | None = field(default=None, repr=False, compare=False)
    _private: Ed25519PrivateKey | None = field(default=None, repr=False, compare=False)

    @classmethod
    def hmac(cls, key_id: str, secret: str | bytes) -> SigningKey:
        return cls(HMAC_SHA256, check_key_id(key_id), _secret=_secret_bytes(secret))

    @classmethod
    def ed25519(cls, key_id: str, private_key: Ed25519PrivateKey) -> SigningKey:
        return cls(ED25519, check_key_id(key_id), _private=private_key)

    def sign(self, payload: bytes) -> str:
        """Base64 of the MAC (HMAC-SHA256) or signature (Ed25519) over ``payload``."""
        if self._private is not None:
            return _b64(self._private.sign(payload))
        assert self._secret is not None
        return _b64(hmac.new(self._secret, payload, hashlib.sha256).digest())

    def trusted(
        self, *, not_before: datetime | None = None, not_after: datetime | None = None
    ) -> TrustedKey:
        """The verifying counterpart (for HMAC, the same secret)."""
        if self._private is not None:
            return TrustedKey.ed25519(
                self.key_id, self._private.public_key(), not_before=not_before, not_after=not_after
            )
        assert self._secret is not None
        return TrustedKey.hmac(
            self.key_id, self._secret, not_before=not_before, not_after=not_after
        )


@dataclass(frozen=True)
class TrustedKey:
    """A key a verifier trusts, with an optional validity window ``[not_before, not_after]``."""

    alg: Algorithm
    key_id: str
    not_before: datetime | None = None
    not_after: datetime | None = None
    _secret: bytes | None = field(default=None, repr=False, compare=False)
    _public: Ed25519PublicKey | None = field(default=None, repr=False, compare=False)

    @classmethod
    def hmac(
        cls,
        key_id: str,
        secret: str | bytes,
        *,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
    ) -> TrustedKey:
        return cls(
            HMAC_SHA256,
            check_key_id(key_id),
            _utc(not_before),
            _utc(not_after),
            _secret=_secret_bytes(secret),
        )

    @classmethod
    def ed25519(
        cls,
        key_id: str,
        public_key: Ed25519PublicKey,
        *,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
    ) -> TrustedKey:
        return cls(
            ED25519, check_key_id(key_id), _utc(not_before), _utc(not_after), _public=public_key
        )

    def with_validity(self, not_before: datetime | None, not_after: datetime | None) -> TrustedKey:
        return TrustedKey(
            self.alg, self.key_id, _utc(not_before), _utc(not_after), self._secret, self._public
        )

    def valid_at(self, now: datetime) -> bool:
        """Whether ``now`` lies inside the validity window (both ends inclusive)."""
        now = _utc(now) or now
        if self.not_before is not None and now < self.not_before:
            return False
        return not (self.not_after is not None and now > self.not_after)

    def verify(self, payload: bytes, value: str) -> bool:
        """Whether ``value`` (base64) is this key's signature or MAC over ``payload``."""
        raw = _unb64(value)
        if raw is None:
            return False
        if self._public is not None:
            if len(raw) != nacl.bindings.crypto_sign_BYTES:
                return False
            try:
                self._verify_key.verify(payload, raw)
            except nacl.exceptions.BadSignatureError:
                return False
            return True
        assert self._secret is not None
        expected = hmac.new(self._secret, payload, hashlib.sha256).digest()
        return hmac.compare_digest(expected, raw)

    @cached_property
    def _verify_key(self) -> nacl.signing.VerifyKey:
        """The Ed25519 key as libsodium verifies with it: half the CPU of ``cryptography``'s
        verify (~55 us against ~110 us; a cold reconcile verifies one per bundle file)."""
        return nacl.signing.VerifyKey(self._public_bytes())

    def _public_bytes(self) -> bytes:
        assert self._public is not None
        return self._public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    @property
    def fingerprint(self) -> str | None:
        """``sha256:<hex>`` of the raw Ed25519 public key; ``None`` for HMAC (never hash secrets out)."""
        if self._public is None:
            return None
        return "sha256:" + hashlib.sha256(self._public_bytes()).hexdigest()

    def describe(self) -> dict[str, Any]:
        """Public facts about the key (no secret material), for ``kneo keys list``."""
        return {
            "key_id": self.key_id,
            "alg": self.alg,
            "fingerprint": self.fingerprint,
            "not_before": _iso(self.not_before),
            "not_after": _iso(self.not_after),
        }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


class Keyring:
    """Trusted keys by key id. Immutable; build a new one to add keys."""

    def __init__(self, keys: Iterable[TrustedKey] = ()) -> None:
        self._keys: dict[str, TrustedKey] = {}
        for key in keys:
            if key.key_id in self._keys:
                raise BundleError(
                    f"key id {key.key_id!r} appears twice in the keyring",
                    code=ErrorCode.bundle_keyring_invalid,
                    key_id=key.key_id,
                )
            self._keys[key.key_id] = key

    def get(self, key_id: str) -> TrustedKey | None:
        return self._keys.get(key_id)

    def __contains__(self, key_id: object) -> bool:
        return key_id in self._keys

    def __iter__(self) -> Iterator[TrustedKey]:
        return iter(self._keys.values())

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def key_ids(self) -> list[str]:
        return sorted(self._keys)

    def merged(self, other: Keyring) -> Keyring:
        """Both keyrings' keys; a key id in both is an error (trust must be unambiguous)."""
        return Keyring([*self, *other])

    def __repr__(self) -> str:
        return f"Keyring(key_ids={self.key_ids!r})"


# --------------------------------------------------------------------------- files


class _Validity(BaseModel):
    model_config = ConfigDict(extra="forbid")
    not_before: datetime | None = None
    not_after: datetime | None = None


class _KeyringIndex(BaseModel):
    model_config = ConfigDict(extra="forbid")
    keys: dict[str, _Validity] = {}


def _key_invalid(path: Path, message: str) -> BundleError:
    """Any key file that cannot be used: ``bundle_key_invalid`` naming the file."""
    return BundleError(message, code=ErrorCode.bundle_key_invalid, path=str(path))


def _read_public_pem(path: Path) -> Ed25519PublicKey:
    try:
        loaded = serialization.load_pem_public_key(path.read_bytes())
    except OSError as exc:
        raise _key_invalid(path, f"cannot read public key {path}: {exc.strerror}") from None
    except (ValueError, UnsupportedAlgorithm):
        raise _key_invalid(path, f"{path} is not a PEM public key") from None
    if not isinstance(loaded, Ed25519PublicKey):
        raise _key_invalid(path, f"{path} is not an Ed25519 public key")
    return loaded


def load_public_key(path: str | os.PathLike[str], key_id: str | None = None) -> TrustedKey:
    """One Ed25519 public key; its id defaults to the file name without ``.pub``."""
    p = Path(path)
    return TrustedKey.ed25519(key_id or p.stem, _read_public_pem(p))


def load_signing_key(
    path: str | os.PathLike[str], key_id: str | None = None, *, password: bytes | None = None
) -> SigningKey:
    """An Ed25519 private key from a PKCS#8 PEM file; id defaults to the file stem."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise _key_invalid(p, f"cannot read private key {p}: {exc.strerror}") from None
    try:
        loaded = serialization.load_pem_private_key(data, password=password)
    except TypeError:
        raise _key_invalid(
            p, f"{p} is encrypted; decrypt it for signing (the CI secret store protects it)"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise _key_invalid(p, f"{p} is not a PEM private key") from None
    if not isinstance(loaded, Ed25519PrivateKey):
        raise _key_invalid(p, f"{p} is not an Ed25519 private key")
    return SigningKey.ed25519(key_id or p.stem, loaded)


def load_keyring(
    directory: str | os.PathLike[str],
    *,
    hmac_secrets: Mapping[str, str | bytes] | None = None,
) -> Keyring:
    """Trusted keys from ``<dir>/*.pub`` plus ``hmac_secrets`` (key id -> secret).

    ``<dir>/keyring.yaml`` may give any of those keys a validity window; an entry for a key
    that does not exist is an error, so a typo cannot silently leave a key unbounded.
    """
    root = Path(directory)
    if not root.is_dir():
        raise BundleError(
            f"keyring {root} is not a directory",
            code=ErrorCode.bundle_keyring_invalid,
            path=str(root),
        )
    keys: dict[str, TrustedKey] = {}
    for pub in sorted(root.glob(f"*{PUBLIC_SUFFIX}")):
        key = load_public_key(pub)
        keys[key.key_id] = key
    for key_id, secret in (hmac_secrets or {}).items():
        if key_id in keys:
            raise BundleError(
                f"key id {key_id!r} is both a public key and an HMAC secret",
                code=ErrorCode.bundle_keyring_invalid,
                key_id=key_id,
            )
        keys[key_id] = TrustedKey.hmac(key_id, secret)
    index_path = root / KEYRING_INDEX
    if index_path.exists():
        for key_id, validity in _read_index(index_path).keys.items():
            if key_id not in keys:
                raise BundleError(
                    f"{index_path} sets validity for unknown key {key_id!r} "
                    f"(no {key_id}{PUBLIC_SUFFIX})",
                    code=ErrorCode.bundle_keyring_invalid,
                    path=str(index_path),
                    key_id=key_id,
                )
            keys[key_id] = keys[key_id].with_validity(validity.not_before, validity.not_after)
    return Keyring(keys.values())


def _read_index(path: Path) -> _KeyringIndex:
    try:
        raw = load_yaml_file(path, what="keyring index") or {}
        index = _KeyringIndex.model_validate(raw)
    except SpecError as exc:
        raise BundleError(
            f"cannot read {path}: {exc.message}",
            code=ErrorCode.bundle_keyring_invalid,
            path=str(path),
            reason=exc.code,
        ) from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise BundleError(
            f"{path}: {where}: {first['msg']}",
            code=ErrorCode.bundle_keyring_invalid,
            path=str(path),
            field=where,
        ) from None
    for key_id, validity in index.keys.items():
        nb, na = _utc(validity.not_before), _utc(validity.not_after)
        if nb is not None and na is not None and na < nb:
            raise BundleError(
                f"{path}: key {key_id!r} has not_after before not_before",
                code=ErrorCode.bundle_keyring_invalid,
                path=str(path),
                key_id=key_id,
            )
    return index


@dataclass(frozen=True)
class GeneratedKey:
    key_id: str
    private_path: Path
    public_path: Path
    fingerprint: str


def generate_ed25519(key_id: str, output_dir: str | os.PathLike[str]) -> GeneratedKey:
    """Write ``<key_id>.key`` (PKCS#8 PEM, mode 0600) and ``<key_id>.pub`` (PEM) to a dir.

    Refuses to overwrite either file: replacing a key silently would orphan every bundle it
    signed. The private file is created with ``O_EXCL`` at mode 0600, so it is never readable
    by others, not even for a moment.
    """
    check_key_id(key_id)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    private_path = out / f"{key_id}{PRIVATE_SUFFIX}"
    public_path = out / f"{key_id}{PUBLIC_SUFFIX}"
    for existing in (private_path, public_path):
        if existing.exists():
            raise BundleError(
                f"{existing} already exists; choose another key id or remove it first",
                code=ErrorCode.bundle_key_exists,
                path=str(existing),
            )
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, pem)
    finally:
        os.close(fd)
    public = private.public_key()
    public_path.write_bytes(
        public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    fingerprint = TrustedKey.ed25519(key_id, public).fingerprint
    assert fingerprint is not None
    return GeneratedKey(key_id, private_path, public_path, fingerprint)
