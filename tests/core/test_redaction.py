"""Redaction scrubs secret keys, inline credentials and PII, and leaves the rest alone."""

from __future__ import annotations

import pytest

from kneo.redaction import REDACTED, redact, redact_text


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Authorization: Bearer abcdef0123456789", "abcdef0123456789"),
        ("key sk-live-ABCDEFGHIJKLMNOP here", "sk-live-ABCDEFGHIJKLMNOP"),
        ("password=hunter22 next", "hunter22"),
        ('api_key: "q9w8e7r6"', "q9w8e7r6"),
        ("mail alice@example.com now", "alice@example.com"),
        ("ssn 123-45-6789", "123-45-6789"),
        ("token ghp_abcdefghijklmnopqrstuv", "ghp_abcdefghijklmnopqrstuv"),
    ],
    ids=["bearer", "sk-key", "password", "api_key", "email", "ssn", "github"],
)
def test_inline_secrets_are_removed(text: str, secret: str) -> None:
    assert secret not in redact_text(text)


def test_secret_keys_are_replaced_deeply() -> None:
    data = {"outer": [{"api_key": "abc", "name": "x"}], "token_count": 7, "password": ""}
    out = redact(data)
    assert out["outer"][0]["api_key"] == REDACTED
    assert out["outer"][0]["name"] == "x"
    assert out["token_count"] == 7
    assert data["outer"][0]["api_key"] == "abc", "input must not be mutated"


def test_extra_secrets_are_removed_verbatim() -> None:
    assert "s3cr3t-value" not in redact_text("the key is s3cr3t-value!", ["s3cr3t-value"])


def test_plain_text_untouched() -> None:
    assert redact_text("Approve the draft?") == "Approve the draft?"
