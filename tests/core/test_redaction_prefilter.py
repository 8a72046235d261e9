"""The redaction prefilter must be a superset of what redaction changes."""
# ruff: noqa: RUF001  (the long s is there on purpose: it case-folds to "s")

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from kneo.redaction import may_need_redaction, redact

SAMPLES = [
    "Bearer abcdef123456",
    "bearer\tABCDEFGH",
    "sk-abcdefgh1234",
    "ghp_abcdefghij123",
    "github_pat_abcdefghij12",
    "xoxb_abcdefghijkl",
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
]
KEYS = [
    "password",
    "api_key",
    "x-api-key",
    "Authorization",
    "auth-header",
    "private_key",
    "credentials",
    "cookie",
    "session_key",
    "signing-key",
    "client_secret",
    "PASSWD",
    "apikey",
    "refresh_token",
    "paſs",
]


def test_samples_trigger() -> None:
    for text in SAMPLES:
        value = {"k": text}
        assert redact(value) != value, text
        assert may_need_redaction(text), text
        assert may_need_redaction(json.dumps(value, ensure_ascii=False)), text
    for key in KEYS:
        value = {key: "v"}
        assert redact(value) != value, key
        assert may_need_redaction(json.dumps(value, ensure_ascii=False)), key


def test_clean_values_pass() -> None:
    assert not may_need_redaction(json.dumps({"units": {"s1": {"output": "x.."}}}))


@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.text(
            alphabet=st.sampled_from(list("abcdeklnoprstyABKPS0123456789-_@.:= \t\n\"'ſK")),
            max_size=40,
        ),
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(
                st.text(alphabet=st.sampled_from(list("aceiknoprstwy_-ſ")), max_size=12),
                inner,
                max_size=4,
            )
        ),
        max_leaves=12,
    )
)
def test_superset_property(value: object) -> None:
    text = json.dumps(value, ensure_ascii=False)
    if not may_need_redaction(text):
        assert redact(value) == value
