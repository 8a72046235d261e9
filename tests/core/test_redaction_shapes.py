"""The common secret shapes beyond the first ones (issue 72): a ``pwd=`` assignment (ODBC
connection strings, ``.env`` files), npm tokens, SendGrid API keys, Twilio API key SIDs,
and a known secret wrapped in base64 (a Basic header, an encoded config blob) at any of the
three byte offsets it may start at. Each planted value is gone from the redacted text, and
the prefilter (``may_need_redaction``) lets each text through to the patterns."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest

from kneo import redaction
from kneo.redaction import REDACTED, may_need_redaction, redact, redact_text, remember_secrets

NPM = "npm_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
SENDGRID = "SG." + "abcdefghijklmnopqrstuv" + "." + "A" * 20 + "b" * 23
TWILIO = "SK" + "0123456789abcdef" * 2


@pytest.mark.parametrize(
    ("text", "planted"),
    [
        ("Driver={PostgreSQL};Server=db;Uid=app;Pwd=hunter2-planted;", "hunter2-planted"),
        ("PWD=s3cr3t-planted ./run", "s3cr3t-planted"),
        ('{"db_pwd": "planted-pwd-value"}', "planted-pwd-value"),
        (f"//registry.npmjs.org/:_authToken={NPM}", NPM),
        (f"npm token {NPM} leaked", NPM),
        (f"SENDGRID key {SENDGRID} in the output", SENDGRID),
        (f"twilio api key sid {TWILIO}", TWILIO),
    ],
)
def test_each_shape_is_redacted(text: str, planted: str) -> None:
    assert may_need_redaction(text)
    out = redact_text(text)
    assert planted not in out and REDACTED in out


def test_a_pwd_field_in_a_mapping_is_redacted_and_counts_are_not() -> None:
    assert redact({"pwd": "planted-123456", "passed": 3}) == {"pwd": REDACTED, "passed": 3}


@pytest.fixture
def clean_known() -> Iterator[None]:
    kept = (redaction._KNOWN, redaction._KNOWN_FORMS)
    yield
    redaction._KNOWN, redaction._KNOWN_FORMS = kept


@pytest.mark.parametrize("prefix", ["", "u:", "us:", "user:"])
@pytest.mark.parametrize("urlsafe", [False, True])
def test_a_known_secret_wrapped_in_base64_is_redacted(
    clean_known: None, prefix: str, urlsafe: bool
) -> None:
    secret = "planted-known-secret-0xA1?>>"  # ``?>>`` makes ``/`` and ``+`` appear
    remember_secrets([secret])
    wrap = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    blob = wrap(f"{prefix}{secret}".encode()).decode()
    text = f"Authorization-ish header: {blob} end"
    out = redact_text(text, show_personal=True)
    assert REDACTED in out and blob not in out
    for form in redaction.base64_forms(secret):
        assert form not in out


def test_short_base64_forms_are_not_remembered(clean_known: None) -> None:
    assert all(len(f) >= redaction.MIN_BASE64_CHARS for f in redaction.base64_forms("abcdef"))
    remember_secrets(["ordinary-plain-words"])
    assert redact_text("nothing here is encoded") == "nothing here is encoded"
