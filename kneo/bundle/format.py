"""Bundle format v1: the JSON document that carries an approved, signed spec through Git.

```
{"kind": "KneoSpecBundle", "version": "v1", "name": ..., "environment": ...,
 "spec": {...resolved spec...}, "digest": "sha256:<hex>",
 "approved_by": ..., "approved_at": "2026-01-01T00:00:00Z",
 "source": {"path": ..., "commit": ...}, "policy_report": {...summary...},
 "signatures": [{"alg": "ed25519", "key_id": "ci", "value": "<base64>"}]}
```

Unknown members are refused (a bundle is a security document: nothing unsigned-by-design
may hide in it). Parsing never raises anything but :class:`~kneo.errors.BundleError`
``bundle_malformed``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    field_serializer,
)

from kneo.documents import DocumentError, parse_json
from kneo.errors import BundleError, ErrorCode
from kneo.names import NAME_PATTERN

BUNDLE_KIND: Literal["KneoSpecBundle"] = "KneoSpecBundle"
BUNDLE_VERSION: Literal["v1"] = "v1"

Algorithm = Literal["hmac-sha256", "ed25519"]
KEY_ID_PATTERN = NAME_PATTERN
DIGEST_PATTERN = r"^sha256:[0-9a-f]{64}$"


class BundleModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _utc_seconds(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


#: The time of signed eval results or a policy approval, written in UTC to the second with
#: a ``Z`` (``2026-01-01T00:00:00Z``), the same in every file that carries one.
UtcSeconds = Annotated[datetime, PlainSerializer(_utc_seconds, return_type=str)]


class Signature(BundleModel):
    """One signature over the canonical bundle without ``signatures``."""

    alg: Algorithm
    key_id: str = Field(pattern=KEY_ID_PATTERN)
    #: Standard base64 (RFC 4648 section 4, padded) of the raw MAC or signature bytes.
    value: str = Field(min_length=1, max_length=1024)


class BundleSource(BundleModel):
    """Where the spec came from: its path and, inside a Git checkout, the commit."""

    path: str = Field(min_length=1)
    commit: str | None = Field(default=None, pattern=r"^[0-9a-f]{40}([0-9a-f]{24})?$")


class PolicyReportSummary(BundleModel):
    """What the signer's validation and environment policy check found."""

    valid: bool
    error_count: int = Field(ge=0)
    warning_count: int = Field(ge=0)
    #: Whether the environment's policy enforcement was active when signing.
    enforcement_enabled: bool = False
    #: Distinct diagnostic codes found, sorted.
    codes: list[str] = Field(default_factory=list)


class CaseOutcome(BundleModel):
    """One eval case's outcome as attested."""

    id: str = Field(pattern=NAME_PATTERN)
    outcome: Literal["passed", "failed"]


class EvalAttestation(BundleModel):
    """An eval suite's result against this bundle's spec, signed with the bundle: the
    signatures cover it like every other member, so an edited attestation fails
    verification as an edited spec does (``kneo.evals``, docs/evals.md)."""

    suite: str = Field(pattern=NAME_PATTERN)
    #: ``sha256:`` of the suite's canonical JSON: which cases and expectations were run.
    suite_digest: str = Field(pattern=DIGEST_PATTERN)
    #: The spec digest the suite ran against; must be the bundle's ``digest``.
    digest: str = Field(pattern=DIGEST_PATTERN)
    pass_rate: float = Field(ge=0.0, le=1.0)
    passed: int = Field(ge=0)
    total: int = Field(ge=1)
    cases: list[CaseOutcome] = Field(min_length=1, max_length=10_000)
    kneo_version: str = Field(min_length=1, max_length=64)

    def regressions(self) -> list[str]:
        """The ids of the cases that failed."""
        return [c.id for c in self.cases if c.outcome != "passed"]


class Bundle(BundleModel):
    """An approved spec for one environment, with its digest and signatures."""

    kind: Literal["KneoSpecBundle"] = BUNDLE_KIND
    version: Literal["v1"] = BUNDLE_VERSION
    #: Bundle and environment names follow :data:`kneo.names.NAME_PATTERN`.
    name: str = Field(pattern=NAME_PATTERN)
    environment: str = Field(pattern=NAME_PATTERN)
    #: The fully resolved spec (overlays and project defaults applied).
    spec: dict[str, Any]
    digest: str = Field(pattern=DIGEST_PATTERN)
    approved_by: str = Field(min_length=1, max_length=200)
    approved_at: AwareDatetime
    source: BundleSource
    policy_report: PolicyReportSummary | None = None
    #: Eval results against ``digest`` (absent from bundles that carry none).
    evals: list[EvalAttestation] | None = None
    signatures: list[Signature] = Field(default_factory=list)

    @field_serializer("approved_at")
    def _utc_z(self, value: datetime) -> str:
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")

    def to_document(self) -> dict[str, Any]:
        """The JSON object written to disk (and signed, minus ``signatures``). A bundle
        without attestations has no ``evals`` member, as bundles had before there were any."""
        document = self.model_dump(mode="json")
        if document.get("evals") is None:
            document.pop("evals", None)
        return document

    def attestation(self, suite: str) -> EvalAttestation | None:
        """The attested result of ``suite`` (the last one attached), if any."""
        found = [a for a in self.evals or [] if a.suite == suite]
        return found[-1] if found else None

    def signer_key_ids(self) -> list[str]:
        return [s.key_id for s in self.signatures]


def parse_bundle(data: bytes | str | Mapping[str, Any]) -> tuple[Bundle, dict[str, Any]]:
    """Parse bundle JSON (bytes, text or an already-decoded object).

    Returns the model and the decoded JSON object; verification signs over the latter so a
    document is checked exactly as written. Raises ``bundle_malformed`` for non-JSON or
    truncated input, input over a document limit (:mod:`kneo.documents`: size, depth, values,
    number digits; ``reason`` names the limit) and anything that does not match the v1 schema.
    """
    document = decode_document(data, what="bundle", code=ErrorCode.bundle_malformed)
    if document.get("kind") != BUNDLE_KIND:
        raise BundleError(
            f"not a Kneo spec bundle: kind must be {BUNDLE_KIND!r}, got {document.get('kind')!r}",
            code=ErrorCode.bundle_malformed,
            field="kind",
        )
    if document.get("version") != BUNDLE_VERSION:
        raise BundleError(
            f"unsupported bundle version {document.get('version')!r}; this Kneo reads "
            f"{BUNDLE_VERSION!r}",
            code=ErrorCode.bundle_malformed,
            field="version",
        )
    return validate_document(Bundle, document, what="bundle", code=ErrorCode.bundle_malformed)


_M = TypeVar("_M", bound=BaseModel)


def decode_document(
    data: bytes | str | Mapping[str, Any], *, what: str, code: str
) -> dict[str, Any]:
    """A signed document's JSON object, read within :mod:`kneo.documents`' limits; a
    duplicate member is refused as ambiguous (a verifier and a reader could see different
    values), anything unreadable or not an object is ``code``."""
    if not isinstance(data, bytes | str):
        return dict(data)
    try:
        document = parse_json(data, source=what)
    except DocumentError as exc:
        if exc.code == ErrorCode.E_DUPLICATE_KEY:
            raise BundleError(
                f"a signed document must be unambiguous: {exc.message}",
                code=code,
                field=exc.details.get("path"),
                reason=exc.code,
            ) from None
        raise BundleError(
            f"{what}: not a readable JSON document (truncated, not a {what}, or over a "
            f"document limit): {exc.message}",
            code=code,
            reason=exc.code,
        ) from None
    if not isinstance(document, dict):
        raise BundleError(f"{what} must be a JSON object", code=code)
    return document


def validate_document(
    model: type[_M], document: dict[str, Any], *, what: str, code: str
) -> tuple[_M, dict[str, Any]]:
    """``document`` as ``model``, the first mismatch named by its path."""
    try:
        return model.model_validate(document), document
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(root)"
        raise BundleError(
            f"{what} does not match the v1 schema at {where}: {first['msg']}",
            code=code,
            field=where,
        ) from None


def parse_kinded(
    raw: bytes | str, model: type[_M], *, kind: str, what: str, code: str
) -> tuple[_M, dict[str, Any]]:
    """A signed document whose ``kind`` member says what it is: decoded, its kind checked
    (``field="kind"``), then validated."""
    document = decode_document(raw, what=what, code=code)
    if document.get("kind") != kind:
        raise BundleError(f"not a Kneo {what}: kind must be {kind!r}", code=code, field="kind")
    return validate_document(model, document, what=what, code=code)


def dump_bundle(bundle: Bundle) -> str:
    """The bundle's file as Git holds it (:func:`document_text`)."""
    return document_text(bundle.to_document())


def document_text(document: Mapping[str, Any]) -> str:
    """Pretty JSON for files in Git: stable member order, two-space indent, final newline;
    every signed document (bundle, eval results, policy approval) is written so."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def bundle_json_schema() -> dict[str, Any]:
    """The JSON Schema of bundle v1, as shipped in ``kneo/schemas/bundle.schema.json``."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://kneo.dev/schemas/bundle.schema.json",
        **Bundle.model_json_schema(mode="serialization"),
        "title": "Kneo spec bundle v1",
    }
