"""The redaction prefilter must be a superset of what redaction changes.

The reference is ``_redact_exhaustive`` (every pattern on every string, no prefilter), so these
tests fail if ``may_need_redaction`` misses anything the patterns or secret keys would change.
"""
# ruff: noqa: RUF001  (the long s, dotless i and Kelvin sign are there on purpose)

from __future__ import annotations

import json
import re
import sys

from hypothesis import given
from hypothesis import strategies as st

from kneo.redaction import _redact_exhaustive, may_need_redaction, redact, redact_text

# Each pattern's prefix followed by characters that contain no other trigger: a prefilter
# that only catches these thanks to the rest of the sample would pass the other samples.
MINIMAL = [
    "github_pat_ZQ0123456789",
    "ghp_ZQ0123456789",
    "gho_ZQ0123456789",
    "ghs_ZQ0123456789",
    "xoxa-ZQ0123456789",
    "xoxb-ZQ0123456789",
    "xoxp-ZQ0123456789",
    "ghu_ZQ0123456789",
    "ghr_ZQ0123456789",
    "glpat-ZQ0123456789",
    "eyJZQ012345.eyJZQ012345.ZQ",
    "AIzaZQ0123456789ZQ0123456789ZQ0123456789",
    "sk_live_ZQ0123456789",
    "rk_test_ZQ0123456789",
    "ASIAZQ0123456789ZQXW",
    "hooks.slack.com/services/T0/B0/ZQ",
    "q://u:ZQ@h",
    "sk-ZQ0123456789",
    "bearer ZQ0123456789",
    "AKIAZQ0123456789ZQXW",
    "z@zq.zq",
    "123-45-6789",
    "+12345678",
    *(f"{word}=q" for word in ("password", "passwd", "passphrase", "secret", "token")),
    "auth=q",
    *(f"{word}{sep}key=1" for word in ("api", "access") for sep in ("", "_", "-")),
]
# Every alternative of the secret-key expression, as a key on its own.
SECRET_KEYS = [
    "pass",
    "secret",
    "token",
    "authorization",
    "credential",
    "cookie",
    *(
        f"{word}{sep}{tail}"
        for word, tail in (
            ("api", "key"),
            ("auth", "header"),
            ("private", "key"),
            ("session", "key"),
            ("signing", "key"),
        )
        for sep in ("", "_", "-")
    ),
]
SAMPLES = [
    *MINIMAL,
    "Bearer abcdef123456",
    "bearer\tABCDEFGH",
    "sk-abcdefgh1234",
    "ghp_abcdefghij123",
    "github_pat_abcdefghij12",
    "xoxa-abcdefghijkl",
    "xoxb-123456789012-123456789012-abcdefghijklmnop",
    "xoxp-1-2-3-abcdefghij",
    "DB_PASSWORD=hunter2secret",
    "GITHUB_TOKEN=abcd1234abcd",
    "MY_SECRET_KEY=zzzz",
    '{"password": "hunter2"}',
    "{'password': 'hunter2'}",
    '{\\"password\\": \\"hunter2\\"}',
    "postgres://user:pw123@host/db",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.abc123def456",
    "Authorization: Basic dXNlcjpwYXNzd29yZA==",
    "client_secret=abc123",
    "passphrase: opensesame",
    "AIzaSyA1234567890abcdefghijklmnopqrstuv",
    "sk_live_abcdefghijklmnopqrstuvwx",
    "glpat-abcdefghijklmnopqrst",
    "https://hooks.slack.com/services/T000/B000/XXXXXXXX",
    "gho_abcdefghij123",
    "ghs_abcdefghij123",
    "AKIAABCDEFGHIJKLMNOP",
    "password=hunter2",
    "api-key: 'x'",
    "ACCESS_KEY=abc",
    'token="t0k"',
    "a.b@example.com",
    "ssn 123-45-6789",
    "-----BEGIN RSA PRIVATE KEY-----\nabc\n-----END RSA PRIVATE KEY-----",
    "١٢٣-٤٥-٦٧٨٩",
    "paſsword=x",
    "Secret:\nvalue",
    "apİ_key=abc",
    "TOKEN=x",
    "apiKey=x",
    "beareR ABCDEFGH",
]
KEYS = [
    "password",
    "api_key",
    "x-api-key",
    "Authorization",
    "auth-header",
    "AuthHeader",
    "private_key",
    "credentials",
    "cookie",
    "session_key",
    "sessionkey",
    "signing-key",
    "client_secret",
    "PASSWD",
    "apikey",
    "refresh_token",
    "paſs",
    "prıvate-key",
    "cooKie",
    "prİvate_key",
]
# Words the patterns and the secret-key expression match (case-insensitively where they do).
WORDS = [
    "pass",
    "passwd",
    "password",
    "secret",
    "token",
    "bearer ",
    "api_key",
    "api-key",
    "apikey",
    "access_key",
    "accesskey",
    "authorization",
    "auth_header",
    "authheader",
    "private_key",
    "privatekey",
    "credential",
    "cookie",
    "session-key",
    "signing_key",
    "x-api-key",
    "sk-",
    "ghp_",
    "gho_",
    "ghs_",
    "github_pat_",
    "xoxa-",
    "xoxp-",
    "glpat-",
    "eyJ",
    ".eyJ",
    "AIza",
    "sk_live_",
    "ASIA",
    "hooks.slack.com/services/",
    "://u",
    ":pw@",
    "_password",
    "passphrase",
    "auth",
    "AKIA",
    "@",
    "123-45-",
    "-----BEGIN RSA PRIVATE KEY-----",
    "-----END RSA PRIVATE KEY-----",
    "token_count",
    '"input_tokens"',
    '"output_tokens"',
    '"max_tokens":',
    "x_output_tokens",
    "api_tokens",
    '"',
    "unit_key",
    "high",
    "ZQ0123456789ZQXWVUTR",  # completes a token after a prefix, and has no trigger itself
]
# Characters ``re.IGNORECASE`` takes for an ASCII letter although ``str.lower`` does not give it.
FOLDS = {"i": "ıİ", "s": "ſ", "k": "K"}


def _variant(draw: st.DrawFn, word: str) -> str:
    out = []
    for char in word:
        low = char.lower()
        options = [low, low.upper(), *FOLDS.get(low, "")] if low.isalpha() else [char]
        out.append(draw(st.sampled_from(options)))
    return "".join(out)


@st.composite
def _texts(draw: st.DrawFn) -> str:
    """Strings made of trigger words (in any case, with Unicode folds) and filler near them."""
    pieces = draw(
        st.lists(
            st.one_of(
                st.sampled_from(WORDS).flatmap(lambda w: st.builds(lambda: w)),
                st.text(
                    alphabet=st.sampled_from(list("abekoprstxyABKPS0123456789٣-_@.:= \t\n\"'")),
                    max_size=12,
                ),
            ),
            max_size=5,
        )
    )
    return "".join(_variant(draw, p) if p in WORDS else p for p in pieces)


def _values() -> st.SearchStrategy[object]:
    return st.recursive(
        st.none() | st.booleans() | st.integers() | _texts(),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_texts(), inner, max_size=4),
        max_leaves=10,
    )


def test_samples_trigger() -> None:
    for text in SAMPLES:
        value = {"k": text}
        assert _redact_exhaustive(value) != value, text
        assert redact(value) != value, text
        assert may_need_redaction(text), text
        assert may_need_redaction(json.dumps(value, ensure_ascii=False)), text
    for key in KEYS:
        value = {key: "v"}
        assert _redact_exhaustive(value) != value, key
        assert may_need_redaction(json.dumps(value, ensure_ascii=False)), key


def test_each_secret_key_alone_triggers() -> None:
    for key in SECRET_KEYS:
        for variant in (key, key.upper()):
            value = {variant: 1}
            assert _redact_exhaustive(value) != value, variant
            assert may_need_redaction(json.dumps(value)), variant


def test_clean_values_pass() -> None:
    state = {
        "format": 1,
        "input_text": "x",
        "units": {
            f"s{i}": {
                "step_id": f"s{i}",
                "status": "completed",
                "output": "x..",
                "attempts": 1,
                "usage": {"model_calls": 1, "input_tokens": 12, "output_tokens": 30},
                "finished_at": "2026-11-21T11:53:08.123456Z",
            }
            for i in range(20)
        },
        "order": [f"s{i}" for i in range(20)],
        "position": {"unit_key": "s3", "step_id": "s3"},
    }
    assert not may_need_redaction(json.dumps(state))
    assert not may_need_redaction("the night was high; the key idea — naïve café 2026-11-21")


def test_every_ignorecase_equivalent_of_a_trigger_letter_is_caught() -> None:
    """Any character ``re`` matches to an ASCII letter under IGNORECASE, put in a trigger word,
    still triggers the prefilter (the fold table is complete for this Python)."""
    every = "".join(chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF)
    for word in ("password", "secret", "token", "bearer", "private", "cookie", "api_key", "akia"):
        for index, letter in enumerate(word):
            if not letter.isalpha():
                continue
            for char in set(re.findall(f"(?i){letter}", every)):
                text = word[:index] + char + word[index + 1 :]
                assert may_need_redaction(text), (word, hex(ord(char)))


@given(_values())
def test_superset_property(value: object) -> None:
    text = json.dumps(value, ensure_ascii=False)
    if not may_need_redaction(text):
        assert _redact_exhaustive(value) == value
        assert redact(value) == value


@given(_texts())
def test_prefiltered_redact_text_equals_exhaustive(text: str) -> None:
    assert redact_text(text) == _redact_exhaustive(text)
