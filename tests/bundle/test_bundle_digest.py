"""The digest is RFC 8785 canonical JSON + SHA-256, reproducible without Kneo."""

from __future__ import annotations

import copy
import hashlib
import json
from datetime import timedelta
from typing import Any

import pytest

from kneo.bundle import (
    BundleSource,
    SigningKey,
    canonical_json,
    sign_bundle,
    signing_payload,
    spec_digest,
)
from kneo.errors import BundleError

from .conftest import NOW


def plain_python_digest(spec: Any) -> str:
    """The documented recipe (docs/bundles.md), for specs with ASCII keys and plain numbers."""

    def norm(value: Any) -> Any:
        if isinstance(value, float) and value.is_integer():
            return int(value)  # JCS writes 1.0 as 1
        if isinstance(value, dict):
            return {k: norm(v) for k, v in value.items()}
        if isinstance(value, list):
            return [norm(v) for v in value]
        return value

    text = json.dumps(norm(spec), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_plain_python_recomputes_the_digest(spec: dict[str, Any]) -> None:
    """A few lines of plain Python following the docs give the same digest."""
    spec["metadata"]["whole"] = 3.0
    assert spec_digest(spec) == plain_python_digest(spec)


def test_plain_python_recomputes_the_digest_of_a_bundle_file(
    spec: dict[str, Any], hmac_key: SigningKey, source: BundleSource
) -> None:
    """A third party reading the bundle JSON can check its digest."""
    from kneo.bundle import dump_bundle

    bundle = sign_bundle(
        spec, hmac_key, name="r", environment="dev", approved_by="a", approved_at=NOW, source=source
    )
    document = json.loads(dump_bundle(bundle))
    assert plain_python_digest(document["spec"]) == document["digest"]


def test_known_vector_pins_the_encoding() -> None:
    """Member order, UTF-8 strings and number forms are exactly JCS."""
    value = {"b": [1.0, 0.5, "é"], "a": {"z": None, "y": True}}
    assert canonical_json(value) == '{"a":{"y":true,"z":null},"b":[1,0.5,"é"]}'.encode()
    assert spec_digest(value) == (
        "sha256:" + hashlib.sha256('{"a":{"y":true,"z":null},"b":[1,0.5,"é"]}'.encode()).hexdigest()
    )


def test_same_spec_signed_twice_has_the_same_digest(
    spec: dict[str, Any], hmac_key: SigningKey, source: BundleSource
) -> None:
    first = sign_bundle(
        spec, hmac_key, name="r", environment="dev", approved_by="a", approved_at=NOW, source=source
    )
    reordered = dict(reversed(list(copy.deepcopy(spec).items())))
    second = sign_bundle(
        reordered,
        hmac_key,
        name="r",
        environment="dev",
        approved_by="b",
        approved_at=NOW + timedelta(hours=1),
        source=source,
    )
    assert first.digest == second.digest == spec_digest(spec)
    assert first.signatures[0].value != second.signatures[0].value


def test_different_spec_has_a_different_digest(spec: dict[str, Any]) -> None:
    other = copy.deepcopy(spec)
    other["agent"]["system_prompt"] += "!"
    assert spec_digest(other) != spec_digest(spec)


@pytest.mark.parametrize(
    "value",
    [{"n": float("nan")}, {"n": float("inf")}, {"n": 2**60}, {1: "non-string key"}],
    ids=["nan", "inf", "int-beyond-2^53", "int-key"],
)
def test_values_json_cannot_represent_exactly_are_refused(value: Any) -> None:
    with pytest.raises(BundleError) as info:
        spec_digest(value)
    assert info.value.code == "bundle_malformed"


def test_signing_payload_covers_everything_but_signatures(
    spec: dict[str, Any], hmac_key: SigningKey, source: BundleSource
) -> None:
    bundle = sign_bundle(
        spec, hmac_key, name="r", environment="dev", approved_by="a", approved_at=NOW, source=source
    )
    document = bundle.to_document()
    payload = json.loads(signing_payload(bundle))
    assert "signatures" not in payload
    assert payload == {k: v for k, v in document.items() if k != "signatures"}
    assert signing_payload(bundle) == signing_payload(document)


def test_yaml_dates_become_iso_strings_before_digesting(
    hmac_key: SigningKey, source: BundleSource
) -> None:
    """A YAML date in a spec is stored (and digested) as the string a JSON reader sees."""
    import datetime as dt

    spec = {"version": "v1", "agent": {"name": "a"}, "metadata": {"since": dt.date(2026, 1, 2)}}
    bundle = sign_bundle(
        spec, hmac_key, name="r", environment="dev", approved_by="a", approved_at=NOW, source=source
    )
    assert bundle.spec["metadata"]["since"] == "2026-01-02"
    assert bundle.digest == plain_python_digest(bundle.spec)
