"""Every user-facing error carries a stable code, status and envelope."""

from __future__ import annotations

from kneo import errors


def test_envelope_carries_details() -> None:
    err = errors.Forbidden("Missing required scope: runs:write", required_scope="runs:write")
    assert err.to_dict() == {
        "error": "forbidden",
        "message": "Missing required scope: runs:write",
        "required_scope": "runs:write",
    }
    assert err.http_status == 403


def test_codes_are_unique_per_class() -> None:
    classes = [
        c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.KneoError)
    ]
    codes = [c.code for c in classes]
    assert len(codes) == len(set(codes))


def test_code_override() -> None:
    err = errors.BundleError("digest mismatch", code="bundle_digest_mismatch")
    assert err.code == "bundle_digest_mismatch"
    assert errors.BundleError.code == "bundle_invalid"
