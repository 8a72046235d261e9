"""Redaction scrubs secret keys, inline credentials and PII, and leaves the rest alone."""

from __future__ import annotations

import pytest

from kneo.redaction import (
    DECISION_SCOPE,
    REDACTED,
    redact,
    redact_mapping,
    redact_text,
    shows_personal_data,
)


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


PERSONAL = [
    ("mail alice@example.com now", "alice@example.com"),
    ("ssn 123-45-6789", "123-45-6789"),
    ("call +1 415 555 0100 today", "+1 415 555 0100"),
    ("call +44 (20) 7946-0958", "+44 (20) 7946-0958"),
]


@pytest.mark.parametrize(("text", "value"), PERSONAL, ids=["email", "ssn", "phone", "phone-uk"])
def test_personal_data_is_redacted_by_default_and_shown_to_deciders(text: str, value: str) -> None:
    """The policy: personal data leaves records (the default) and stays in a decider's view."""
    assert value not in redact_text(text)
    assert redact_text(text, show_personal=True) == text
    assert redact({"to": text}, show_personal=True) == {"to": text}


def test_secrets_are_redacted_for_deciders_too() -> None:
    """Secrets never pass, whoever asks: inline and under secret-named keys."""
    data = {"to": "ops@example.com", "api_key": "k-123456", "note": "Bearer abcdef0123456789"}
    shown = redact(data, show_personal=True)
    assert shown == {"to": "ops@example.com", "api_key": REDACTED, "note": f"Bearer {REDACTED}"}
    assert redact_mapping(data, show_personal=True) == shown
    assert redact_mapping(data)["to"] == "[REDACTED_EMAIL]"


def test_numbers_that_are_not_phone_numbers_stay() -> None:
    for text in ("2026-01-02T03:04:05+00:00", "+15 points", "1+2345678901", "v1.2.3+build5"):
        assert redact_text(text) == text


def test_the_decision_scope_shows_personal_data() -> None:
    from kneo.service.auth import ROLE_SCOPES

    shown = {role for role, scopes in ROLE_SCOPES.items() if shows_personal_data(scopes)}
    assert shown == {"admin", "reviewer", "service"} and DECISION_SCOPE == "human:write"
