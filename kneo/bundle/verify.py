"""Verify a bundle: schema, digest, then signatures against a keyring at an injected time.

Order of checks and their codes (each a :class:`~kneo.errors.BundleError`):

1. ``bundle_malformed``: not JSON, truncated, duplicate members, or not bundle v1.
2. ``bundle_digest_mismatch``: ``digest`` is not the digest of ``spec``;
   ``bundle_attestation_mismatch``: an eval attestation names another digest or does not add up.
3. ``bundle_unsigned``: no signatures at all.
4. Per signature, a signature by a trusted key that does not verify fails the whole bundle:
   ``bundle_alg_mismatch`` (the key is of another algorithm) or ``bundle_signature_invalid``.
   Signatures that merely do not count are noted: ``bundle_unknown_key`` (key id not in the
   keyring), ``bundle_key_expired`` (outside the key's validity window) and
   ``bundle_key_not_accepted`` (not in ``accepted_key_ids``).
5. Fewer valid distinct signers than ``required_signatures``: with none at all, the first
   noted reason is raised; otherwise ``bundle_insufficient_signatures``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kneo.bundle.digest import canonical_json, sha256_digest, signing_payload
from kneo.bundle.format import Bundle, Signature, parse_bundle
from kneo.bundle.keys import Keyring
from kneo.errors import BundleError, ErrorCode


@dataclass(frozen=True)
class VerifiedBundle:
    """A bundle whose digest and signatures checked out."""

    bundle: Bundle
    digest: str
    #: Key ids whose signatures verified and counted, in signature order.
    signer_key_ids: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.bundle.name

    @property
    def environment(self) -> str:
        return self.bundle.environment

    @property
    def spec(self) -> dict[str, Any]:
        return self.bundle.spec


@dataclass(frozen=True)
class _Rejection:
    code: str
    key_id: str
    message: str


def verify_bundle(
    bundle: Bundle | bytes | str | Mapping[str, Any],
    keyring: Keyring,
    *,
    now: datetime,
    required_signatures: int = 1,
    accepted_key_ids: Collection[str] | None = None,
) -> VerifiedBundle:
    """Check ``bundle`` (raw bytes/text as read from Git, a decoded object, or a model).

    ``accepted_key_ids`` narrows the keyring (an environment's ``accepted_key_ids``); it can
    never add a key. No I/O: everything needed is passed in.
    """
    if required_signatures < 1:
        raise ValueError("required_signatures must be at least 1")
    if isinstance(bundle, Bundle):
        model, document = bundle, bundle.to_document()
    else:
        model, document = parse_bundle(bundle)
    return verify_parsed(
        model,
        document,
        keyring,
        now=now,
        required_signatures=required_signatures,
        accepted_key_ids=accepted_key_ids,
    )


def verify_parsed(
    model: Bundle,
    document: Mapping[str, Any],
    keyring: Keyring,
    *,
    now: datetime,
    required_signatures: int = 1,
    accepted_key_ids: Collection[str] | None = None,
) -> VerifiedBundle:
    """:func:`verify_bundle` of what :func:`~kneo.bundle.format.parse_bundle` returned
    (``model`` and the ``document`` it was parsed from), so a caller that parsed the file
    already (the controller) does not validate it twice. The signatures are checked over
    ``document``, the model's fields are what is trusted: they must come from one parse."""
    if required_signatures < 1:
        raise ValueError("required_signatures must be at least 1")
    canonical_spec = canonical_json(model.spec)
    actual = sha256_digest(canonical_spec)
    if actual != model.digest:
        raise BundleError(
            f"bundle {model.name!r}: digest {model.digest} does not match its spec ({actual}); "
            "the spec was changed after signing",
            code=ErrorCode.bundle_digest_mismatch,
            bundle=model.name,
        )
    check_attestations(model)
    if not model.signatures:
        raise BundleError(
            f"bundle {model.name!r} has no signatures",
            code=ErrorCode.bundle_unsigned,
            bundle=model.name,
        )
    payload = signing_payload(document, canonical_spec=canonical_spec)
    accepted = None if accepted_key_ids is None else frozenset(accepted_key_ids)
    signers: list[str] = []
    rejections: list[_Rejection] = []
    for signature in model.signatures:
        rejection = judge_signature(model, signature, keyring, payload, now, accepted)
        if rejection is not None:
            rejections.append(rejection)
        elif signature.key_id not in signers:
            signers.append(signature.key_id)
    if len(signers) < required_signatures:
        raise too_few(model, signers, rejections, required_signatures)
    return VerifiedBundle(model, model.digest, tuple(signers))


def check_attestations(model: Bundle) -> None:
    """Every eval attestation names the bundle's digest and adds up (``passed`` and
    ``pass_rate`` are what its cases say): ``bundle_attestation_mismatch`` otherwise. A signed
    attestation that does not is a signer's mistake; an edited one already failed its
    signature."""
    for index, attestation in enumerate(model.evals or []):
        where = f"evals.{index}"
        problem = None
        passed = sum(1 for c in attestation.cases if c.outcome == "passed")
        if attestation.digest != model.digest:
            problem = f"was measured against {attestation.digest}, not this bundle's digest"
        elif attestation.total != len(attestation.cases) or attestation.passed != passed:
            problem = (
                f"says {attestation.passed}/{attestation.total} passed, its cases say "
                f"{passed}/{len(attestation.cases)}"
            )
        elif abs(attestation.pass_rate - passed / len(attestation.cases)) > 1e-6:
            problem = f"pass_rate {attestation.pass_rate} is not {passed}/{len(attestation.cases)}"
        if problem is not None:
            raise BundleError(
                f"bundle {model.name!r}: eval attestation {attestation.suite!r} ({where}) "
                f"{problem}",
                code=ErrorCode.bundle_attestation_mismatch,
                bundle=model.name,
                field=where,
            )


def judge_signature(
    model: Bundle,
    signature: Signature,
    keyring: Keyring,
    payload: bytes,
    now: datetime,
    accepted: frozenset[str] | None,
) -> _Rejection | None:
    """``None`` when the signature counts. A key that is unknown, out of its window or not
    accepted here is a rejection (another signature may still do); a signature that does not
    verify means the bundle was tampered with, and raises."""
    key = keyring.get(signature.key_id)
    if key is None:
        return _Rejection(
            ErrorCode.bundle_unknown_key,
            signature.key_id,
            f"signed by key {signature.key_id!r}, which is not in the keyring "
            f"(trusted: {', '.join(keyring.key_ids) or 'none'})",
        )
    if key.alg != signature.alg:
        raise BundleError(
            f"bundle {model.name!r}: signature by {signature.key_id!r} claims "
            f"{signature.alg} but the trusted key is {key.alg}",
            code=ErrorCode.bundle_alg_mismatch,
            bundle=model.name,
            key_id=signature.key_id,
        )
    if not key.verify(payload, signature.value):
        raise BundleError(
            f"bundle {model.name!r}: signature by key {signature.key_id!r} is invalid; "
            "the bundle was edited after signing or signed with a different key",
            code=ErrorCode.bundle_signature_invalid,
            bundle=model.name,
            key_id=signature.key_id,
        )
    if not key.valid_at(now):
        return _Rejection(
            ErrorCode.bundle_key_expired,
            signature.key_id,
            f"key {signature.key_id!r} is outside its validity window "
            f"({_window(key.not_before, key.not_after)}) at {_iso(now)}",
        )
    if accepted is not None and signature.key_id not in accepted:
        return _Rejection(
            ErrorCode.bundle_key_not_accepted,
            signature.key_id,
            f"key {signature.key_id!r} is trusted but not accepted for environment "
            f"{model.environment!r} (accepted: {', '.join(sorted(accepted)) or 'none'})",
        )
    return None


def too_few(
    model: Bundle, signers: list[str], rejections: list[_Rejection], required: int
) -> BundleError:
    """No signature counted: the first rejection's own error; some did: too few of them."""
    if not signers:
        first = rejections[0]
        return BundleError(
            f"bundle {model.name!r}: {first.message}",
            code=first.code,
            bundle=model.name,
            key_id=first.key_id,
        )
    return BundleError(
        f"bundle {model.name!r} needs {required} signatures from distinct accepted "
        f"keys, has {len(signers)} ({', '.join(signers)})"
        + "".join(f"; {r.message}" for r in rejections),
        code=ErrorCode.bundle_insufficient_signatures,
        bundle=model.name,
        signers=signers,
    )


def _iso(value: datetime | None) -> str:
    return "-" if value is None else value.isoformat().replace("+00:00", "Z")


def _window(not_before: datetime | None, not_after: datetime | None) -> str:
    return f"{_iso(not_before)} .. {_iso(not_after)}"
