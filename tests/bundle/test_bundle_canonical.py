"""The fast canonical encoder is byte-identical to the ``rfc8785`` reference (property test),
and the signing payload composed from its parts is the bytes signed before (issue 36f)."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import rfc8785

from kneo.bundle import (
    BundleSource,
    dump_bundle,
    generate_ed25519,
    load_keyring,
    load_signing_key,
    verify_bundle,
)
from kneo.bundle.digest import canonical_json, signing_payload, spec_digest
from kneo.bundle.format import CaseOutcome, EvalAttestation, PolicyReportSummary
from kneo.bundle.sign import sign_bundle

ALPHABET = [chr(c) for c in range(0x00, 0x80)] + [
    "\u00e9",
    "\u2028",
    "\u2029",
    "\u007f",
    "\ufeff",
    "\uffff",
    "\ue000",
    "\U0001f600",
    "\u4e2d",
]
FLOATS = [
    0.0,
    -0.0,
    1.0,
    -1.0,
    0.5,
    0.1,
    0.2,
    1 / 3,
    1e-4,
    9.99e-5,
    1e-7,
    123.456,
    1e15 + 0.5,
    1e16,
    1e20,
    1e21,
    2.0**53,
    2.0**53 - 1,
    5e-324,
    1.7976931348623157e308,
    -273.15,
]
INTS = [0, 1, -1, 42, 2**31, 2**53 - 1, -(2**53 - 1)]


def _string(rng: random.Random) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 8)))


def _value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 3 or roll < 0.45:
        makers: list[Callable[[], Any]] = [
            lambda: _string(rng),
            lambda: rng.choice(FLOATS),
            lambda: rng.choice(FLOATS) * rng.choice([1, -1]),
            lambda: rng.choice(INTS),
            lambda: rng.uniform(-1e6, 1e6),
            lambda: rng.choice([True, False, None]),
        ]
        return rng.choice(makers)()
    if roll < 0.7:
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {_string(rng): _value(rng, depth + 1) for _ in range(rng.randint(0, 5))}


@pytest.mark.parametrize("seed", range(4))
def test_fast_path_matches_the_reference_encoder(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(1000):
        value = _value(rng)
        assert canonical_json(value) == rfc8785.dumps(value), value


def test_typical_spec_keys_with_non_ascii_still_match() -> None:
    value: dict[str, Any] = {
        "\U0001f600": 1,
        "\ue000": 2,
        "a": "\u2028\x00\x1f\x7f",
        "é": [1.5, 2.0],
    }
    assert canonical_json(value) == rfc8785.dumps(value)


def test_composed_payload_equals_encoding_the_whole_document() -> None:
    rng = random.Random(7)
    for _ in range(200):
        spec = _value(rng)
        document = {
            "kind": "KneoSpecBundle",
            "spec": spec,
            "digest": "x",
            "signatures": [{"alg": "ed25519"}],
            "approved_by": _string(rng),
        }
        composed = signing_payload(document, canonical_spec=canonical_json(spec))
        assert (
            composed
            == signing_payload(document)
            == rfc8785.dumps({k: v for k, v in document.items() if k != "signatures"})
        )


def _payload_before_issue_36f(document: dict[str, Any], canonical_spec: bytes) -> bytes:
    """The composition signing_payload used until issue 36f (two encoder calls per member):
    the new one must give exactly these bytes."""
    document = {k: v for k, v in document.items() if k != "signatures"}
    members = []
    for key in sorted(document, key=lambda k: k.encode("utf-16-be")):
        encoded = canonical_spec if key == "spec" else canonical_json(document[key])
        members.append(canonical_json(key) + b":" + encoded)
    return b"{" + b",".join(members) + b"}"


#: Top-level member names around "spec" in UTF-16 order, including ones that sort
#: differently by code point (U+E000 and U+1F600: surrogates sort before U+E000).
EXTRA_KEYS = ["", "a", "sp", "spea", "spec ", "specs", "sped", "t", "Z", "\u00e9", "\ue000"]
EXTRA_KEYS += ["\U0001f600", "spec\U0001f600", "spe\u00e9", "~"]


@pytest.mark.parametrize("seed", range(3))
def test_payload_bytes_are_those_of_the_old_composition(seed: int) -> None:
    rng = random.Random(100 + seed)
    for _ in range(300):
        spec = _value(rng)
        document: dict[str, Any] = {"spec": spec, "signatures": [{"alg": "ed25519"}]}
        for key in rng.sample(EXTRA_KEYS, rng.randint(0, len(EXTRA_KEYS))):
            document[key] = _value(rng)
        items = list(document.items())
        rng.shuffle(items)  # member order in the file does not matter
        document = dict(items)
        canonical_spec = canonical_json(spec)
        reference = rfc8785.dumps({k: v for k, v in document.items() if k != "signatures"})
        old = _payload_before_issue_36f(document, canonical_spec)
        new = signing_payload(document, canonical_spec=canonical_spec)
        assert new == old == reference == signing_payload(document), document


def test_payload_of_real_bundles_is_unchanged(tmp_path: Path) -> None:
    """Signed bundles with and without a policy report, eval attestations and a commit: the
    payload equals the old composition's, and the signature still verifies."""
    generate_ed25519("ci", tmp_path / "keys")
    key = load_signing_key(tmp_path / "keys" / "ci.key")
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    (trusted / "ci.pub").write_bytes((tmp_path / "keys" / "ci.pub").read_bytes())
    keyring = load_keyring(trusted)
    rng = random.Random(5)
    for i in range(40):
        spec = {"version": "v1", "agent": {"name": f"a{i}", "system_prompt": _string(rng)}}
        spec["extra"] = {_string(rng): _value(rng) for _ in range(3)}
        digest = spec_digest(spec)
        evals = []
        if i % 2:
            evals.append(
                EvalAttestation(
                    suite="smoke",
                    suite_digest=digest,
                    digest=digest,
                    total=2,
                    passed=1,
                    pass_rate=0.5,
                    cases=[
                        CaseOutcome(id="c1", outcome="passed"),
                        CaseOutcome(id="c2", outcome="failed"),
                    ],
                    kneo_version="0.1",
                )
            )
        report = None
        if i % 3:
            report = PolicyReportSummary(valid=True, error_count=0, warning_count=i, codes=["w"])
        bundle = sign_bundle(
            spec,
            key,
            name=f"agent{i}",
            environment="prod" if i % 2 else "dev",
            approved_by=_string(rng) or "x",
            approved_at=datetime(2026, 1, 1, tzinfo=UTC),
            source=BundleSource(path=f"specs/a{i}.yaml", commit="c" * 40 if i % 4 else None),
            policy_report=report,
            evals=evals,
        )
        document = json.loads(dump_bundle(bundle))
        canonical_spec = canonical_json(document["spec"])
        assert signing_payload(document, canonical_spec=canonical_spec) == (
            _payload_before_issue_36f(document, canonical_spec)
        )
        assert signing_payload(bundle) == _payload_before_issue_36f(document, canonical_spec)
        verified = verify_bundle(dump_bundle(bundle), keyring, now=datetime.now(UTC))
        assert verified.signer_key_ids == ("ci",)
