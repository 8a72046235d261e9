"""Redaction of secrets and personal data where data leaves a boundary.

Applied to HTTP responses, log records, trace events, stored checkpoints and audit events.
Keys that name secrets have their whole value replaced; strings anywhere are scrubbed of
inline secrets (bearer tokens, ``sk-`` keys, ``key=value`` credentials), e-mail addresses
and US social security numbers. Pure functions, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "[REDACTED]"

_SECRET_KEY = re.compile(
    r"(pass(word|wd)?|secret|token|api[_-]?key|apikey|authorization|auth[_-]?header|"
    r"private[_-]?key|credential|cookie|session[_-]?key|signing[_-]?key|x-api-key)",
    re.IGNORECASE,
)
# Keys that contain a secret-looking word but only ever hold metadata about secrets.
_SAFE_KEYS = frozenset(
    {
        "token_count",
        "tokens",
        "max_tokens",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "env_var",
        "secret_env",
        "key_env",
        "key_id",
        "api_key_env",
        "present",
        "secrets",
        "required_scope",
        "auth_enabled",
        "password_env",
        "idempotency_key_present",
        "content_present",
        "token_env",
    }
)

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{6,}"), "Bearer " + REDACTED),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{8,}"), REDACTED),
    (re.compile(r"\b(?:ghp|gho|ghs|github_pat|xox[abp])_[A-Za-z0-9_]{10,}"), REDACTED),
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), REDACTED),
    (
        re.compile(
            r"(?i)\b(password|passwd|secret|token|api[_-]?key|apikey|access[_-]?key)"
            r"(\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|[^\s,;&\"']+)"
        ),
        r"\1\2" + REDACTED,
    ),
    (
        re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S),
        REDACTED,
    ),
    (re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"), "[REDACTED_EMAIL]"),
    (re.compile(r"\b\d{3}-\d{2}-\d{4}\b"), "[REDACTED_SSN]"),
)


# A superset of everything ``redact`` (without extra secrets) can change: if this finds
# nothing in a value's text - or in its JSON text, since every trigger is made of characters
# JSON leaves unescaped - redaction would return the value unchanged. Keep it in step with
# ``_SECRET_KEY`` and ``_PATTERNS`` (tests/core/test_redaction_prefilter.py checks samples).
_MAY_REDACT = re.compile(
    r"bearer|sk-|ghp_|gho_|ghs_|github_pat_|xox[abp]_|akia|pass|secret|token|api[_-]?key|"
    r"access[_-]?key|authorization|auth[_-]?header|private|credential|cookie|"
    r"session[_-]?key|signing[_-]?key|@|\d{3}-\d{2}-\d{4}",
    re.IGNORECASE,
)


_ASCII_TRIGGERS = (
    "@",
    "pass",
    "secret",
    "token",
    "bearer",
    "sk-",
    "ghp_",
    "gho_",
    "ghs_",
    "github_pat_",
    "xoxa_",
    "xoxb_",
    "xoxp_",
    "akia",
    "apikey",
    "api_key",
    "api-key",
    "accesskey",
    "access_key",
    "access-key",
    "authorization",
    "authheader",
    "auth_header",
    "auth-header",
    "private",
    "credential",
    "cookie",
    "sessionkey",
    "session_key",
    "session-key",
    "signingkey",
    "signing_key",
    "signing-key",
)
_SSN_LIKE = re.compile(r"\d{3}-\d{2}-\d{4}")


def may_need_redaction(text: str) -> bool:
    """``False`` guarantees ``redact`` leaves a value whose text (or JSON text) this is as is."""
    if not text.isascii():  # Unicode case folding: let the regex decide
        return _MAY_REDACT.search(text) is not None
    low = text.lower()
    if any(trigger in low for trigger in _ASCII_TRIGGERS):
        return True
    return "-" in text and _SSN_LIKE.search(text) is not None


def is_secret_key(key: str) -> bool:
    return key.lower() not in _SAFE_KEYS and bool(_SECRET_KEY.search(key))


def redact_text(text: str, extra_secrets: Iterable[str] = ()) -> str:
    """Scrub inline secrets and PII from one string; ``extra_secrets`` are exact values."""
    for secret in extra_secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact(value: Any, extra_secrets: Iterable[str] = ()) -> Any:
    """A redacted deep copy of a JSON-like value (dicts, lists, strings, scalars)."""
    extra = tuple(extra_secrets)
    return _redact(value, extra)


def _redact(value: Any, extra: tuple[str, ...]) -> Any:
    if isinstance(value, str):
        return redact_text(value, extra)
    if isinstance(value, Mapping):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            if isinstance(key, str) and is_secret_key(key) and item not in (None, "", False):
                out[key] = REDACTED if not isinstance(item, bool) else item
            else:
                out[key] = _redact(item, extra)
        return out
    if isinstance(value, list | tuple):
        return [_redact(item, extra) for item in value]
    return value
