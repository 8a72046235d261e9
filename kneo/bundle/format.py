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
from typing import Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
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


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Signature(_Model):
    """One signature over the canonical bundle without ``signatures``."""

    alg: Algorithm
    key_id: str = Field(pattern=KEY_ID_PATTERN)
    #: Standard base64 (RFC 4648 section 4, padded) of the raw MAC or signature bytes.
    value: str = Field(min_length=1, max_length=1024)


class BundleSource(_Model):
    """Where the spec came from: its path and, inside a Git checkout, the commit."""

    path: str = Field(min_length=1)
    commit: str | None = Field(default=None, pattern=r"^[0-9a-f]{40}([0-9a-f]{24})?$")


class PolicyReportSummary(_Model):
    """What the signer's validation and environment policy check found."""

    valid: bool
    error_count: int = Field(ge=0)
    warning_count: int = Field(ge=0)
    #: Whether the environment's policy enforcement was active when signing.
    enforcement_enabled: bool = False
    #: Distinct diagnostic codes found, sorted.
    codes: list[str] = Field(default_factory=list)


class CaseOutcome(_Model):
    """One eval case's outcome as attested."""

    id: str = Field(pattern=NAME_PATTERN)
    outcome: Literal["passed", "failed"]


class EvalAttestation(_Model):
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


class Bundle(_Model):
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


class _DuplicateMember(ValueError):
    pass


def _no_duplicate_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Refuse ``{"a": 1, "a": 2}``: parsers disagree on which value wins."""
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateMember(key)
            seen.add(key)
    return result


def parse_bundle(data: bytes | str | Mapping[str, Any]) -> tuple[Bundle, dict[str, Any]]:
    """Parse bundle JSON (bytes, text or an already-decoded object).

    Returns the model and the decoded JSON object; verification signs over the latter so a
    document is checked exactly as written. Raises ``bundle_malformed`` for non-JSON or
    truncated input, input over a document limit (:mod:`kneo.documents`: size, depth, values,
    number digits; ``reason`` names the limit) and anything that does not match the v1 schema.
    """
    if isinstance(data, bytes | str):
        try:
            document = parse_json(data, source="bundle", object_pairs_hook=_no_duplicate_members)
        except _DuplicateMember as exc:
            raise BundleError(
                f"bundle repeats the JSON member {exc.args[0]!r}; a signed document must be "
                "unambiguous",
                code=ErrorCode.bundle_malformed,
                field=exc.args[0],
            ) from None
        except DocumentError as exc:
            raise BundleError(
                f"bundle is not a readable JSON document (truncated, not a bundle, or over a "
                f"document limit): {exc.message}",
                code=ErrorCode.bundle_malformed,
                reason=exc.code,
            ) from None
    else:
        document = dict(data)
    if not isinstance(document, dict):
        raise BundleError("bundle must be a JSON object", code=ErrorCode.bundle_malformed)
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
    try:
        bundle = Bundle.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(root)"
        raise BundleError(
            f"bundle does not match the v1 schema at {where}: {first['msg']}",
            code=ErrorCode.bundle_malformed,
            field=where,
        ) from None
    return bundle, document


def dump_bundle(bundle: Bundle) -> str:
    """Pretty JSON for files in Git: stable member order, two-space indent, final newline."""
    return json.dumps(bundle.to_document(), indent=2, ensure_ascii=False) + "\n"


def bundle_json_schema() -> dict[str, Any]:
    """The JSON Schema of bundle v1, as shipped in ``schemas/bundle.schema.json``."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://kneo.dev/schemas/bundle.schema.json",
        **Bundle.model_json_schema(mode="serialization"),
        "title": "Kneo spec bundle v1",
    }
