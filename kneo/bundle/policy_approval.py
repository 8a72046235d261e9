"""A signed approval of a policy change: ``environments/approvals/<env>.json``.

A loosening of an environment's policy takes effect only with what the policy in force
demands for a promotion there (:mod:`kneo.controller.ratchet`): signatures of enough
accepted keys over the change, as a bundle has over its spec. ``kneo policy sign`` writes
this document beside the environment file::

    {"kind": "KneoPolicyApproval", "version": "v1", "environment": "prod",
     "policy_digest": "sha256:<hex>", "summary": "required_signatures 2 → 1",
     "approved_by": "release-team", "approved_at": "2026-03-02T12:00:00Z",
     "signatures": [{"alg": "ed25519", "key_id": "ci", "value": "<base64>"}]}

``policy_digest`` is :func:`kneo.policy.ratchet.policy_digest` of the environment's
effective policy at the signed commit (its file merged with the project config's
``policy_enforcement``), or of its absence for a signed removal: the signatures vouch for
exactly the rules that take effect, not for a file name. Signatures cover the canonical
document without ``signatures`` (as a bundle's do) and are judged with the keyring and the
``accepted_key_ids`` and ``required_signatures`` of the policy *in force*. Codes (each a
:class:`~kneo.errors.BundleError`): ``policy_approval_malformed``,
``policy_approval_mismatch`` (another environment or another policy than the one at the
commit) and the bundle signature codes.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from kneo.bundle.digest import signing_payload
from kneo.bundle.format import (
    DIGEST_PATTERN,
    BundleModel,
    Signature,
    UtcSeconds,
    document_text,
    parse_kinded,
)
from kneo.bundle.keys import Keyring, SigningKey
from kneo.errors import BundleError, ErrorCode
from kneo.names import NAME_PATTERN

APPROVAL_KIND: Literal["KneoPolicyApproval"] = "KneoPolicyApproval"
#: Where approvals live in the watched repository: ``<dir>/<environment>.json``.
APPROVALS_DIR = "environments/approvals"


class PolicyApproval(BundleModel):
    """Signatures over one environment's policy (by digest) at one commit."""

    kind: Literal["KneoPolicyApproval"] = APPROVAL_KIND
    version: Literal["v1"] = "v1"
    environment: str = Field(pattern=NAME_PATTERN)
    policy_digest: str = Field(pattern=DIGEST_PATTERN)
    #: What the change does, for the people reading the file (not trusted: the digest is).
    summary: str = Field(default="", max_length=2000)
    approved_by: str = Field(min_length=1, max_length=200)
    approved_at: UtcSeconds
    signatures: list[Signature] = Field(default_factory=list, max_length=20)

    def to_document(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def approval_path(environment: str) -> str:
    return f"{APPROVALS_DIR}/{environment}.json"


def sign_policy_approval(
    environment: str,
    policy_digest: str,
    key: SigningKey,
    *,
    approved_by: str,
    approved_at: datetime,
    summary: str = "",
    existing: bytes | str | None = None,
) -> PolicyApproval:
    """An approval of ``policy_digest`` signed with ``key``; an ``existing`` approval of the
    same policy keeps its signatures (a co-signature), one of another policy is replaced."""
    base = PolicyApproval(
        environment=environment,
        policy_digest=policy_digest,
        summary=summary,
        approved_by=approved_by,
        approved_at=approved_at.replace(microsecond=0),
    )
    if existing is not None:
        found, _ = parse_policy_approval(existing)
        if (found.environment, found.policy_digest) == (environment, policy_digest):
            base = found
    value = key.sign(signing_payload(base.to_document()))
    signature = Signature(alg=key.alg, key_id=key.key_id, value=value)
    kept = [s for s in base.signatures if s.key_id != key.key_id]
    return base.model_copy(update={"signatures": [*kept, signature]})


def dump_policy_approval(approval: PolicyApproval) -> str:
    return document_text(approval.to_document())


def parse_policy_approval(raw: bytes | str) -> tuple[PolicyApproval, dict[str, Any]]:
    """The approval and the document it was read from; ``policy_approval_malformed``."""
    return parse_kinded(
        raw,
        PolicyApproval,
        kind=APPROVAL_KIND,
        what="policy approval",
        code=ErrorCode.policy_approval_malformed,
    )


def verify_policy_approval(
    raw: bytes | str,
    keyring: Keyring,
    *,
    now: datetime,
    environment: str,
    policy_digest: str,
    required_signatures: int,
    accepted_key_ids: Collection[str] | None,
) -> tuple[str, ...]:
    """The key ids whose signatures count for ``policy_digest`` in ``environment``, judged by
    the rules in force; raises when fewer than ``required_signatures`` do."""
    approval, document = parse_policy_approval(raw)
    if (approval.environment, approval.policy_digest) != (environment, policy_digest):
        raise BundleError(
            f"the approval is for {approval.environment!r} at {approval.policy_digest[:19]}, "
            f"not {environment!r} at {policy_digest[:19]} (the policy at this commit); sign "
            "the change again (kneo policy sign)",
            code=ErrorCode.policy_approval_mismatch,
        )
    return _count(approval, document, keyring, now, required_signatures, accepted_key_ids)


def _count(
    approval: PolicyApproval,
    document: Mapping[str, Any],
    keyring: Keyring,
    now: datetime,
    required: int,
    accepted: Collection[str] | None,
) -> tuple[str, ...]:
    """Signatures as a bundle's are judged: a forged one fails the whole document; one by
    an unknown, expired or not accepted key merely does not count."""
    payload = signing_payload(document)
    signers: list[str] = []
    ignored: list[str] = []
    for signature in approval.signatures:
        key = keyring.get(signature.key_id)
        if key is None:
            ignored.append(f"{signature.key_id} is not trusted")
            continue
        if key.alg != signature.alg or not key.verify(payload, signature.value):
            raise BundleError(
                f"the signature by {signature.key_id!r} is invalid: the approval was edited "
                "after signing or signed with another key",
                code=ErrorCode.bundle_signature_invalid,
                key_id=signature.key_id,
            )
        if not key.valid_at(now):
            ignored.append(f"{signature.key_id} is outside its validity window")
        elif accepted is not None and signature.key_id not in accepted:
            ignored.append(f"{signature.key_id} is not accepted in {approval.environment}")
        elif signature.key_id not in signers:
            signers.append(signature.key_id)
    if len(signers) < required:
        raise BundleError(
            f"needs {required} signatures from distinct accepted keys, has {len(signers)}"
            + (f" ({', '.join(signers)})" if signers else "")
            + "".join(f"; {why}" for why in ignored),
            code=ErrorCode.bundle_insufficient_signatures,
            signers=signers,
        )
    return tuple(signers)
