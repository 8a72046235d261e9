"""Signed spec bundles: format, canonical digest, signing keys, signing and verification.

Trust layer. Pure: nothing here reads environment variables, the clock or the network;
files are read only by the explicit loaders in :mod:`kneo.bundle.keys` (``load_keyring``,
``load_signing_key``) and written only by ``generate_ed25519``. Verification works on the
bytes or objects a caller passes, with ``now`` injected for key validity windows.
Imports only pydantic, rfc8785, cryptography, PyYAML (keyring index) and ``kneo.errors``;
never the spec pipeline, SQLAlchemy, FastAPI, Typer, httpx or Git.

Errors are :class:`~kneo.errors.BundleError` with a stable ``bundle_*`` code (see
``docs/bundles.md``).
"""

from kneo.bundle.digest import canonical_json, signing_payload, spec_digest
from kneo.bundle.format import (
    BUNDLE_KIND,
    BUNDLE_VERSION,
    Bundle,
    BundleSource,
    CaseOutcome,
    EvalAttestation,
    PolicyReportSummary,
    Signature,
    dump_bundle,
    parse_bundle,
)
from kneo.bundle.keys import (
    GeneratedKey,
    Keyring,
    SigningKey,
    TrustedKey,
    generate_ed25519,
    load_keyring,
    load_public_key,
    load_signing_key,
)
from kneo.bundle.sign import build_bundle, cosign, sign_bundle
from kneo.bundle.verify import VerifiedBundle, verify_bundle

__all__ = [
    "BUNDLE_KIND",
    "BUNDLE_VERSION",
    "Bundle",
    "BundleSource",
    "CaseOutcome",
    "EvalAttestation",
    "GeneratedKey",
    "Keyring",
    "PolicyReportSummary",
    "Signature",
    "SigningKey",
    "TrustedKey",
    "VerifiedBundle",
    "build_bundle",
    "canonical_json",
    "cosign",
    "dump_bundle",
    "generate_ed25519",
    "load_keyring",
    "load_public_key",
    "load_signing_key",
    "parse_bundle",
    "sign_bundle",
    "signing_payload",
    "spec_digest",
    "verify_bundle",
]
