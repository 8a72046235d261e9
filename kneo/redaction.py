"""Redaction of secrets and personal data where data leaves a boundary: the one policy.

Two kinds of sensitive data, one rule each:

========================  =====================================  ============================
where data goes           secrets (keys, tokens, passwords,      personal data (e-mail
                          private keys, secret-named fields)     addresses, phone numbers,
                                                                 US social security numbers)
========================  =====================================  ============================
logs, traces, stored      redacted                               redacted
checkpoints, audit
events, stored records
responses to a caller     redacted                               **shown**
with the decision scope
(``human:write``)
any other response        redacted                               redacted
========================  =====================================  ============================

A person deciding on a task must see what they decide about (the address a tool will write
to); a record kept for later, or a reader who only watches, does not need it. Callers pass
``show_personal=True`` only for a response to a decider (:func:`shows_personal_data`); everything
else keeps the default. Secrets never pass, whoever asks. Applied to HTTP responses, the
console, CLI output, log records, trace events, stored checkpoints and audit events. Pure
functions, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping
from functools import lru_cache
from typing import Any

from kneo import jsontext

REDACTED = "[REDACTED]"

#: The scope of the people who decide on human tasks: responses to its holders show
#: personal data (``kneo.service.auth`` grants scopes; this module owns the rule).
DECISION_SCOPE = "human:write"


def shows_personal_data(scopes: Collection[str]) -> bool:
    """Whether a response to a caller holding ``scopes`` shows personal data."""
    return DECISION_SCOPE in scopes


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

_SECRET_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
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
)
_PERSONAL_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"), "[REDACTED_EMAIL]"),
    (re.compile(r"\b\d{3}-\d{2}-\d{4}\b"), "[REDACTED_SSN]"),
    # International numbers (+, then 8 to 15 digits, single separators between groups).
    (re.compile(r"(?<![\w+])\+\d(?:[ .-]?\(?\d\)?){7,14}(?!\d)"), "[REDACTED_PHONE]"),
)
_PATTERNS = _SECRET_PATTERNS + _PERSONAL_PATTERNS


# ``may_need_redaction`` is a superset of everything ``redact`` (without extra secrets) can
# change: if it finds nothing in a value's text - or in its JSON text (``ensure_ascii=False``),
# since every trigger is made of characters JSON leaves unescaped - redaction returns the value
# unchanged. Keep it in step with ``_SECRET_KEY`` and ``_PATTERNS``
# (tests/core/test_redaction_prefilter.py checks samples and random values against the
# exhaustive walk). It runs on every step's whole state, so it is a handful of C-level substring
# scans over the lowered text: one alternation regex is 5-10x slower in ``re`` on JSON text.
#
# Triggers found as they are, then groups of triggers behind a shared substring (``key`` for
# ``api_key``, ``session-key``, ...): a clean text costs 15 C-level scans, and a group's regex
# (led by a literal, so ``re`` jumps between its occurrences) runs only when its substring is
# there. ``any(map(low.__contains__, ...))`` keeps the loop in C.
_PLAIN = (
    "@",
    "pass",
    "secret",
    "token",
    "bearer",
    "sk-",
    "akia",
    "private",
    "credential",
    "cookie",
    "github_pat_",
)
_KEYS = [
    f"{word}{sep}key" for word in ("api", "access", "session", "signing") for sep in ("", "_", "-")
]
_GROUPS = (
    ("xox", re.compile(r"xox[abp]_")),
    ("gh", re.compile(r"gh[pos]_")),
    ("auth", re.compile(r"auth(?:orization|[-_]?header)")),
    ("key", re.compile("key(?:" + "|".join(f"(?<={k})" for k in _KEYS) + ")")),
)
# ``re.IGNORECASE`` matches these to ASCII letters, but ``str.lower`` does not map them to the
# letter: "\u0131" (dotless i) and "\u017f" (long s) stay as they are, "\u0130" (capital I
# with dot) becomes "i" plus a combining dot. (The Kelvin sign lowers to "k".)
_FOLDS = (("\u0131", "i"), ("\u017f", "s"), ("i\u0307", "i"))
# ``\d{3}-\d{2}-\d{4}`` anchored at its first hyphen, so ``re`` scans for the literal "-"
# instead of trying a match at every digit (timestamps are full of digits).
_SSN_LIKE = re.compile(r"-(?<=\d{3}-)\d{2}-\d{4}")
# A phone number starts with "+" and a digit: ``re`` scans for the literal.
_PHONE_LIKE = re.compile(r"\+\d")


def may_need_redaction(text: str) -> bool:
    """``False`` guarantees ``redact`` leaves a value whose text (or JSON text) this is as is."""
    low = text.lower()
    if not text.isascii():
        for char, letter in _FOLDS:
            if char in low:
                low = low.replace(char, letter)
    if any(map(low.__contains__, _PLAIN)):
        return True
    for head, group in _GROUPS:
        if head in low and group.search(low) is not None:
            return True
    if "+" in text and _PHONE_LIKE.search(text) is not None:
        return True
    return "-" in text and _SSN_LIKE.search(text) is not None


@lru_cache(maxsize=4096)
def is_secret_key(key: str) -> bool:
    """Whether a mapping key names a secret (cached: the same keys recur in every payload)."""
    return key.lower() not in _SAFE_KEYS and bool(_SECRET_KEY.search(key))


def redact_text(
    text: str, extra_secrets: Iterable[str] = (), *, show_personal: bool = False
) -> str:
    """Scrub inline secrets and (unless ``show_personal``) personal data from one string;
    ``extra_secrets`` are exact values."""
    for secret in extra_secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    if not may_need_redaction(text):  # no pattern can match: skip the substitutions
        return text
    return _scrub_secrets(text, ()) if show_personal else _scrub(text, ())


def _scrub(text: str, _extra: tuple[str, ...]) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _scrub_secrets(text: str, _extra: tuple[str, ...]) -> str:
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _redact_secrets_text(text: str, extra: tuple[str, ...]) -> str:
    return redact_text(text, extra, show_personal=True)


def redact(value: Any, extra_secrets: Iterable[str] = (), *, show_personal: bool = False) -> Any:
    """A redacted deep copy of a JSON-like value (dicts, lists, strings, scalars);
    ``show_personal`` leaves personal data in (responses to a decider, see the policy)."""
    extra = tuple(extra_secrets)
    return _redact(value, extra, _redact_secrets_text if show_personal else redact_text)


def redact_mapping(value: dict[str, Any], *, show_personal: bool = False) -> dict[str, Any]:
    """:func:`redact` for a JSON object, typed. When the object's JSON text has nothing
    redaction could change (:func:`may_need_redaction`, a tested superset), the object itself
    is returned, not a copy: one scan of one text instead of a walk scanning every string."""
    try:
        clean = not may_need_redaction(jsontext.dumps(value))
    except (TypeError, ValueError):  # not plain JSON: let redact walk it
        clean = False
    if clean:
        return value
    out: dict[str, Any] = redact(value, show_personal=show_personal)
    return out


def _redact_exhaustive(value: Any) -> Any:
    """:func:`redact` applying every pattern to every string, without the prefilter: the
    reference the prefilter is tested against."""
    return _redact(value, (), _scrub)


_TextFn = Callable[[str, tuple[str, ...]], str]


def _redact(value: Any, extra: tuple[str, ...], text_fn: _TextFn) -> Any:
    if isinstance(value, str):
        return text_fn(value, extra)
    if isinstance(value, Mapping):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            if isinstance(key, str) and is_secret_key(key) and item not in (None, "", False):
                out[key] = REDACTED if not isinstance(item, bool) else item
            else:
                out[key] = _redact(item, extra, text_fn)
        return out
    if isinstance(value, list | tuple):
        return [_redact(item, extra, text_fn) for item in value]
    return value
