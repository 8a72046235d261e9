"""Eval results recorded apart from a bundle: a signed ``KneoEvalResults`` file.

``kneo eval sign`` writes one beside the bundle it is for, at
``bundles/<name>/evals/<environment>.json`` in the watched repository, so a suite run after
the bundle was signed (or by another pipeline) counts without re-signing the bundle. It
names the bundle, environment and spec digest and holds the same attestations a bundle's
``evals`` member holds; signatures cover it exactly as a bundle's cover the bundle (the
canonical document without ``signatures``) and verify against the same keyring, narrowed
and counted as the environment says. Codes (each a :class:`~kneo.errors.BundleError`):
``eval_results_malformed``; ``eval_results_mismatch`` (another bundle, environment or
digest than the bundle beside it, or an attestation that does not add up); and the
bundle's signature codes (``bundle_signature_invalid`` for an edited file).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from kneo.bundle.digest import signing_payload
from kneo.bundle.format import (
    DIGEST_PATTERN,
    Bundle,
    BundleModel,
    EvalAttestation,
    Signature,
    UtcSeconds,
    document_text,
    parse_kinded,
)
from kneo.bundle.keys import Keyring, SigningKey
from kneo.bundle.verify import check_attestations, judge_signature, too_few
from kneo.errors import BundleError, ErrorCode
from kneo.names import NAME_PATTERN

RESULTS_KIND: Literal["KneoEvalResults"] = "KneoEvalResults"


class EvalResults(BundleModel):
    """Signed eval results for one bundle's digest in one environment."""

    kind: Literal["KneoEvalResults"] = RESULTS_KIND
    version: Literal["v1"] = "v1"
    name: str = Field(pattern=NAME_PATTERN)
    environment: str = Field(pattern=NAME_PATTERN)
    digest: str = Field(pattern=DIGEST_PATTERN)
    recorded_by: str = Field(min_length=1, max_length=200)
    recorded_at: UtcSeconds
    evals: list[EvalAttestation] = Field(min_length=1, max_length=100)
    signatures: list[Signature] = Field(default_factory=list)

    def to_document(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def sign_eval_results(
    bundle: Bundle,
    evals: Sequence[EvalAttestation],
    key: SigningKey,
    *,
    recorded_by: str,
    recorded_at: datetime,
) -> EvalResults:
    """Results for ``bundle`` signed with ``key``; each attestation must be for its digest."""
    check_attestations(bundle.model_copy(update={"evals": list(evals)}))
    results = EvalResults(
        name=bundle.name,
        environment=bundle.environment,
        digest=bundle.digest,
        recorded_by=recorded_by,
        recorded_at=recorded_at.replace(microsecond=0),
        evals=list(evals),
    )
    value = key.sign(signing_payload(results.to_document()))
    return results.model_copy(
        update={"signatures": [Signature(alg=key.alg, key_id=key.key_id, value=value)]}
    )


def dump_eval_results(results: EvalResults) -> str:
    return document_text(results.to_document())


def verify_eval_results(
    raw: bytes | str,
    bundle: Bundle,
    keyring: Keyring,
    *,
    now: datetime,
    required_signatures: int = 1,
    accepted_key_ids: Collection[str] | None = None,
) -> tuple[EvalResults, tuple[str, ...]]:
    """The results file read from Git, checked against the (already verified) ``bundle``
    beside it: same name, environment and digest, attestations that add up, and signatures
    judged by the bundle's rules (same keyring, ``accepted_key_ids``, ``required_signatures``).
    Returns the results and the key ids whose signatures counted (their windows bound how
    long the verdict holds)."""
    results, document = _parse(raw)
    signers = _verify_signatures(
        document, bundle, keyring, now, required_signatures, accepted_key_ids
    )
    if (results.name, results.environment, results.digest) != (
        bundle.name,
        bundle.environment,
        bundle.digest,
    ):
        raise BundleError(
            f"eval results are for {results.name!r} in {results.environment!r} at "
            f"{results.digest}, not the bundle beside them ({bundle.name!r} in "
            f"{bundle.environment!r} at {bundle.digest}); run the suite again and sign its "
            "result for this bundle, or remove the file",
            code=ErrorCode.eval_results_mismatch,
        )
    try:
        check_attestations(bundle.model_copy(update={"evals": results.evals}))
    except BundleError as exc:
        raise BundleError(exc.message, code=ErrorCode.eval_results_mismatch) from None
    return results, signers


def _verify_signatures(
    document: Mapping[str, Any],
    bundle: Bundle,
    keyring: Keyring,
    now: datetime,
    required: int,
    accepted: Collection[str] | None,
) -> tuple[str, ...]:
    model = bundle.model_copy(update={"signatures": []})
    payload = signing_payload(document)
    allowed = None if accepted is None else frozenset(accepted)
    signers: list[str] = []
    rejections = []
    for raw in document.get("signatures") or []:
        signature = Signature.model_validate(raw)
        rejection = judge_signature(model, signature, keyring, payload, now, allowed)
        if rejection is not None:
            rejections.append(rejection)
        elif signature.key_id not in signers:
            signers.append(signature.key_id)
    if not document.get("signatures"):
        raise BundleError("eval results have no signatures", code=ErrorCode.bundle_unsigned)
    if len(signers) < required:
        raise too_few(model, signers, rejections, required)
    return tuple(signers)


def _parse(raw: bytes | str) -> tuple[EvalResults, dict[str, Any]]:
    return parse_kinded(
        raw,
        EvalResults,
        kind=RESULTS_KIND,
        what="eval results",
        code=ErrorCode.eval_results_malformed,
    )


__all__ = [
    "RESULTS_KIND",
    "EvalResults",
    "dump_eval_results",
    "sign_eval_results",
    "verify_eval_results",
]
