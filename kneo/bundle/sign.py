"""Build and sign bundles. Pure: the caller supplies the resolved spec, the key and the time.

Checking that a spec is valid and passes its environment's policy happens before this
(the CLI runs the spec pipeline); these functions only assemble and sign.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter

from kneo.bundle.digest import signing_payload, spec_digest
from kneo.bundle.format import (
    Bundle,
    BundleSource,
    EvalAttestation,
    PolicyReportSummary,
    Signature,
    parse_bundle,
)
from kneo.bundle.keys import SigningKey
from kneo.bundle.verify import check_attestations
from kneo.errors import BundleError, ErrorCode
from kneo.names import check_name

_PLAIN_JSON = TypeAdapter(dict[str, Any])  # a spec's values as a JSON reader will see them


def build_bundle(
    spec: Mapping[str, Any],
    *,
    name: str,
    environment: str,
    approved_by: str,
    approved_at: datetime,
    source: BundleSource,
    policy_report: PolicyReportSummary | None = None,
    evals: Sequence[EvalAttestation] = (),
) -> Bundle:
    """An unsigned bundle with its digest; ``approved_at`` is kept to whole seconds.
    ``evals`` are eval results against this spec, signed with it (each must name its digest).

    The spec is first reduced to plain JSON values (a YAML date becomes its ISO string), so
    the digest covers exactly what a reader of the bundle file will see. ``name`` and
    ``environment`` must be valid names (:mod:`kneo.names`; ``invalid_name`` otherwise).
    """
    check_name(name, kind="bundle name", field="name")
    check_name(environment, kind="environment")
    spec_dict = _PLAIN_JSON.dump_python(dict(spec), mode="json")
    bundle = Bundle(
        name=name,
        environment=environment,
        spec=spec_dict,
        digest=spec_digest(spec_dict),
        approved_by=approved_by,
        approved_at=approved_at.replace(microsecond=0),
        source=source,
        policy_report=policy_report,
        evals=list(evals) or None,
    )
    check_attestations(bundle)
    return bundle


def sign_bundle(
    spec: Mapping[str, Any],
    key: SigningKey,
    *,
    name: str,
    environment: str,
    approved_by: str,
    approved_at: datetime,
    source: BundleSource,
    policy_report: PolicyReportSummary | None = None,
    evals: Sequence[EvalAttestation] = (),
) -> Bundle:
    """Build a bundle for ``spec`` (with its eval attestations) and sign it with ``key``."""
    bundle = build_bundle(
        spec,
        name=name,
        environment=environment,
        approved_by=approved_by,
        approved_at=approved_at,
        source=source,
        policy_report=policy_report,
        evals=evals,
    )
    return _add_signature(bundle, key)


def cosign(bundle: Bundle | bytes | str | Mapping[str, Any], key: SigningKey) -> Bundle:
    """Add ``key``'s signature to an existing bundle (idempotent for the same key id).

    Refuses a bundle whose digest does not match its spec, so a co-signer never vouches for
    edited content, and a bundle whose JSON is not in the normalized form this module
    writes (re-serializing it would change what the existing signatures cover).
    """
    if isinstance(bundle, Bundle):
        model = bundle
    else:
        model, document = parse_bundle(bundle)
        if document != model.to_document():
            raise BundleError(
                "bundle is not in normalized form (missing or reformatted members); "
                "co-signing it would invalidate its existing signatures",
                code=ErrorCode.bundle_malformed,
            )
    actual = spec_digest(model.spec)
    if actual != model.digest:
        raise BundleError(
            f"bundle digest {model.digest} does not match its spec ({actual}); refusing to co-sign",
            code=ErrorCode.bundle_digest_mismatch,
        )
    return _add_signature(model, key)


def _add_signature(bundle: Bundle, key: SigningKey) -> Bundle:
    value = key.sign(signing_payload(bundle))
    signature = Signature(alg=key.alg, key_id=key.key_id, value=value)
    signatures = [signature if s.key_id == key.key_id else s for s in bundle.signatures]
    if signature not in signatures:
        signatures.append(signature)
    return bundle.model_copy(update={"signatures": signatures})
