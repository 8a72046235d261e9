"""What the CLI's signing commands share (``kneo spec bundle``, ``kneo policy``, ``kneo eval``):
the signing key a command line names, the clock and bundle files read as untrusted
documents (their files are written by :func:`kneo.cli.files.write_atomic`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kneo.bundle import SigningKey, load_signing_key
from kneo.clock import SystemClock
from kneo.documents import load_json_file, read_file
from kneo.errors import BundleError, ErrorCode, InvalidRequest, NotFound, SpecError
from kneo.settings import Settings

DEFAULT_KEY_ENV = "KNEO_SERV_SPEC_SIGNING_KEY"
DEFAULT_HMAC_KEY_ID = "default"


def cli_settings() -> Settings:
    return Settings.from_env()


def now() -> Any:
    return SystemClock().now()


def hmac_secret(var: str) -> str:
    secret = cli_settings().secret(var)
    if not secret:
        raise BundleError(
            f"the signing secret variable {var} is not set (or pass --key-file / --public-key / "
            "--keyring for Ed25519)",
            code=ErrorCode.bundle_key_missing,
            key_env=var,
        )
    return str(secret)


def signing_key(key_env: str | None, key_file: Path | None, key_id: str | None) -> SigningKey:
    if key_env is not None and key_file is not None:
        raise InvalidRequest("use either --key-env or --key-file, not both")
    if key_file is not None:
        return load_signing_key(key_file, key_id)
    var = key_env or DEFAULT_KEY_ENV
    return SigningKey.hmac(key_id or DEFAULT_HMAC_KEY_ID, hmac_secret(var))


def read_bundle_bytes(path: Path) -> bytes:
    try:
        return read_file(path, what="bundle file")
    except SpecError as exc:
        if not path.exists():
            raise NotFound(f"{path}: bundle file not found", path=str(path)) from None
        raise BundleError(
            f"{path}: cannot read bundle: {exc.message}",
            code=ErrorCode.bundle_malformed,
            path=str(path),
            reason=exc.code,
        ) from None


def attestation_file(path: Path) -> Any:
    """An eval result file as a bundle attestation."""
    from kneo.evals.runner import attestation

    return attestation(load_json_file(path, what="eval result"))
