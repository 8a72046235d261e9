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

import base64
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from functools import cache, lru_cache
from typing import Any

from kneo import jsontext

REDACTED = "[REDACTED]"

#: The scope of the people who decide on human tasks: responses to its holders show
#: personal data (``kneo.service.auth`` grants scopes; this module owns the rule).
DECISION_SCOPE = "human:write"


def shows_personal_data(scopes: Collection[str]) -> bool:
    """Whether a response to a caller holding ``scopes`` shows personal data."""
    return DECISION_SCOPE in scopes


@cache
def _re(source: str) -> re.Pattern[str]:
    """``source`` compiled on its first use: a process compiles only the patterns its texts
    reach (the prefilter and the triggers gate most of them), where compiling every one at
    import cost each fresh process ~17 M instructions."""
    return re.compile(source)


_SECRET_KEY = (
    r"(?i)(pass(word|wd)?|pwd|secret|token|api[_-]?key|apikey|authorization|auth[_-]?header|"
    r"private[_-]?key|credential|cookie|session[_-]?key|signing[_-]?key|x-api-key)"
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
        "input_tokens",
        "output_tokens",
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
        # eval results (kneo.evals): how many cases passed, never a password
        "passed",
        "pass_rate",
        "pass_threshold",
        "min_pass_rate",
        "baseline_pass_rate",
        "newly_passing",
    }
)

# A name that says its value is a secret, as a whole segment of a longer name
# (``DB_PASSWORD``, ``aws_secret_access_key``, ``x-api-key``, ``client_secret``): the segment
# boundary is what ``\b`` is not after ``_``. ``tokens`` or ``passage`` are other words.
_SECRET_NAME = (
    # segments before the keyword, fewest first; possessive inside a segment, so a word is
    # never re-read character by character (that made this pattern cost 2.5x the rest)
    r"(?<![A-Za-z0-9])(?:[A-Za-z0-9]++[_.-])*?"
    r"(?:pass(?:word|wd|phrase)|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|"
    r"private[_-]?key|credentials?|auth)"
    r"(?:[_.-][A-Za-z0-9]++)*+(?![A-Za-z0-9])"
)
# ``name=value``, ``name: value``, ``"name": "value"`` (JSON, also escaped inside a JSON
# string), ``'name': 'value'`` (a Python dict's text).
_ASSIGNED_SECRET = (
    # ``:`` only as YAML and JSON write it (a space or a quote after it): ``credentials:read``
    # is a scope's name, not an assignment
    rf"(?i)({_SECRET_NAME})(\\?[\"']\s*[:=]\s*|\s*=\s*|\s*:(?:\s+|(?=\\?[\"'])))"
    r"(\\\"(?:[^\\]|\\[^\"])*?\\\"|\"[^\"]*\"|'[^']*'|[^\s,;&\"'})\]]+)"
)
_NOT_SECRET_VALUE = r"(?i)(?:true|false|null|none)"


def _assigned(match: re.Match[str]) -> str:
    """One ``name=value``: the value redacted, unless the name only counts (``token_count``)
    or the value is a boolean, null or empty."""
    name, sep, value = match.groups()
    bare = value.strip("\\\"'")
    last = name.lower().rsplit(".", 1)[-1]  # ``agent.model.api_key_env`` is an ``api_key_env``
    if last in _SAFE_KEYS or not bare or _re(_NOT_SECRET_VALUE).fullmatch(bare):
        return match.group(0)
    return f"{name}{sep}{REDACTED}"


def _authorization(match: re.Match[str]) -> str:
    head, scheme = match.group(1), match.group(2)
    return f"{head}{scheme} {REDACTED}" if scheme else f"{head}{REDACTED}"


#: (triggers, pattern, replacement): a pattern runs only when one of its triggers (lower case)
#: is in the lowered text, since each is a substring of anything it matches. A C-level
#: substring test costs a fraction of a regex pass, and a text that trips the prefilter
#: usually trips one or two patterns, not all of them. ``()``: always run.
_Rule = tuple[tuple[str, ...], str, Any]
_ASSIGNED_TRIGGERS = (
    "pass",
    "pwd",
    "secret",
    "token",
    "credential",
    "auth",
    "private",
    *(f"{word}{sep}key" for word in ("api", "access") for sep in ("", "_", "-")),
)
_SECRET_PATTERNS: tuple[_Rule, ...] = (
    # ``Authorization: Basic ...`` (any scheme) before the bare ``Bearer`` form
    (
        ("authorization",),
        (
            r"(?i)((?:proxy-)?authorization\\?[\"']?\s*[:=]\s*\\?[\"']?)"
            r"(?:(basic|bearer|digest|negotiate|token|apikey)\s+)?[^\s\"',;\\]+"
        ),
        _authorization,
    ),
    (("bearer",), r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{6,}", "Bearer " + REDACTED),
    # a URL's password (``postgresql://user:pw@host``); the user name stays
    (
        ("@",),
        r"(?i)\b([a-z][a-z0-9+.-]*+://[^/\s:@]*+):[^/\s@]++@",
        r"\1:" + REDACTED + "@",
    ),
    # an http(s) URL's lone user name: where a token goes (``https://TOKEN@github.com``)
    (("@",), r"(?i)\b(https?://)[^/\s:@?#\[\]]++@", r"\1" + REDACTED + "@"),
    # Slack: bot/user/app tokens and incoming-webhook URLs (the URL is the credential)
    (("xox",), r"\bxox[abposre]-[A-Za-z0-9-]{10,}", REDACTED),
    (
        ("hooks.slack",),
        r"(?i)(hooks\.slack\.com/)(?:services|workflows|triggers)/[A-Za-z0-9/_-]+",
        r"\1" + REDACTED,
    ),
    # JSON Web Tokens: a header and a payload, each base64url of ``{"``
    (
        ("eyj",),
        r"\beyJ[A-Za-z0-9_-]{6,}\.eyJ[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]*",
        REDACTED,
    ),
    # vendor key formats: OpenAI/Anthropic, GitHub, GitLab, AWS, Google, Stripe
    (("sk-",), r"\bsk-[A-Za-z0-9_-]{8,}", REDACTED),
    (
        ("gh", "github_pat_"),
        r"\b(?:gh[pousr]_[A-Za-z0-9_]{10,}|github_pat_[A-Za-z0-9_]{10,})",
        REDACTED,
    ),
    (
        ("gl",),
        r"\bgl(?:pat|dt|rt|cbt|imt|ptt|agent|oas|soat|ft|ffct)-[A-Za-z0-9_-]{10,}",
        REDACTED,
    ),
    (("akia", "asia"), r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b", REDACTED),
    (("aiza",), r"\bAIza[0-9A-Za-z_-]{30,}", REDACTED),
    (("k_",), r"\b(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{10,}", REDACTED),
    # npm access tokens, SendGrid API keys, Twilio API key SIDs
    (("npm_",), r"\bnpm_[A-Za-z0-9]{36}\b", REDACTED),
    (("sg.",), r"\bSG\.[A-Za-z0-9_-]{16,32}\.[A-Za-z0-9_-]{16,64}", REDACTED),
    (("sk",), r"\bSK[0-9a-fA-F]{32}\b", REDACTED),
    (_ASSIGNED_TRIGGERS, _ASSIGNED_SECRET, _assigned),
    (
        ("private key",),
        r"(?s)-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----",
        REDACTED,
    ),
)
_PERSONAL_PATTERNS: tuple[_Rule, ...] = (
    (("@",), r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}", "[REDACTED_EMAIL]"),
    (("-",), r"\b\d{3}-\d{2}-\d{4}\b", "[REDACTED_SSN]"),
    # International numbers (+, then 8 to 15 digits, single separators between groups).
    (("+",), r"(?<![\w+])\+\d(?:[ .-]?\(?\d\)?){7,14}(?!\d)", "[REDACTED_PHONE]"),
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
# there. Plain ``for``/``in`` loops: on CPython 3.11 ``in`` is one specialized opcode, where
# ``any(map(low.__contains__, ...))`` calls a method wrapper per needle and took 40 % longer.
_PLAIN = (
    "@",
    "pass",
    "pwd",
    "npm_",
    "secret",
    "bearer",
    "sk-",
    "private",
    "credential",
    "cookie",
    "github_pat_",
    "xox",
    "eyj",
    "aiza",
    "akia",
    "asia",
    "hooks.slack",
)
_KEYS = [
    f"{word}{sep}key" for word in ("api", "access", "session", "signing") for sep in ("", "_", "-")
]
# A model call's usage (``"input_tokens": 12``) is in every agent's state: "token" there is a
# safe key's (``_SAFE_KEYS``), so only those whole JSON keys are passed over.
# Led by the literal, so ``re`` jumps between occurrences instead of trying every position.
_COUNTED_TOKENS = "".join(
    f'(?<!"{key.removesuffix("s")})' for key in sorted(_SAFE_KEYS) if key.endswith("_tokens")
)
_GROUPS = (
    ("token", f'token(?:(?!s")|{_COUNTED_TOKENS})'),
    ("gh", r"gh[pousr]_"),
    ("gl", r"gl(?:pat|dt|rt|cbt|imt|ptt|agent|oas|soat|ft|ffct)-"),
    ("k_", r"[sr]k_(?:live|test)_"),
    ("sg.", r"(?<![a-z0-9])sg\.[a-z0-9_-]{16,32}\."),
    ("sk", r"(?<![a-z0-9])sk[0-9a-f]{32}(?![a-z0-9])"),
    ("auth", r"(?<![a-z0-9])auth(?![a-z0-9])|auth(?:orization|[-_]?header)"),
    ("key", "key(?:" + "|".join(f"(?<={k})" for k in _KEYS) + ")"),
)
# ``re.IGNORECASE`` matches these to ASCII letters, but ``str.lower`` does not map them to the
# letter: "\u0131" (dotless i) and "\u017f" (long s) stay as they are, "\u0130" (capital I
# with dot) becomes "i" plus a combining dot. (The Kelvin sign lowers to "k".)
_FOLDS = (("\u0131", "i"), ("\u017f", "s"), ("i\u0307", "i"))
# ``\d{3}-\d{2}-\d{4}`` anchored at its first hyphen, so ``re`` scans for the literal "-"
# instead of trying a match at every digit (timestamps are full of digits).
_SSN_LIKE = r"-(?<=\d{3}-)\d{2}-\d{4}"
# A phone number starts with "+" and a digit: ``re`` scans for the literal.
_PHONE_LIKE = r"\+\d"


#: Values of this process's secrets (Kneo's own and the project's declared ones), redacted
#: wherever they appear, whatever shape surrounds them; longest first.
_KNOWN: tuple[str, ...] = ()
#: ``_KNOWN`` and each value as it reads inside a JSON string (quotes and backslashes escaped)
_KNOWN_FORMS: tuple[str, ...] = ()
#: Shorter values are not redacted by value: too likely to be ordinary text.
MIN_SECRET_CHARS = 6
#: A known secret's base64 form shorter than this is not redacted by value.
MIN_BASE64_CHARS = 8


def reduce_url(url: str) -> str:
    """``url`` as it may be shown, logged or stored: without its user information
    (``https://user:token@host/x`` -> ``https://host/x``). Anything that is not a
    ``scheme://`` URL (a path, ``git@host:repo``, which cannot carry a password) is as is."""
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme:
        return url
    end = len(rest)
    for stop in "/?#":
        at = rest.find(stop)
        if at != -1 and at < end:
            end = at
    authority = rest[:end]
    if "@" not in authority:
        return url
    return f"{scheme}://{authority.rpartition('@')[2]}{rest[end:]}"


def base64_forms(secret: str) -> set[str]:
    """What ``secret`` reads as inside base64 text (standard and URL-safe alphabets), at
    each of the three offsets it may start at in the encoded bytes (``user:secret`` in a
    Basic header, a config blob): the characters that depend on the secret's bytes alone.
    Forms shorter than :data:`MIN_BASE64_CHARS` are left out (too likely to be text)."""
    raw = secret.encode()
    forms: set[str] = set()
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw).decode()
        start = -(-8 * offset // 6)  # the first character made of the secret's bits only
        end = 8 * (offset + len(raw)) // 6
        core = encoded[start:end]
        if len(core) >= MIN_BASE64_CHARS:
            forms |= {core, core.replace("+", "-").replace("/", "_")}
    return forms


def remember_secrets(values: Iterable[str | None]) -> None:
    """Redact these values by value from now on, in this process, as they are and wrapped
    in base64 (:func:`base64_forms`). Every process that holds secrets registers them as it
    starts (the platform factory: Kneo's own secrets and the project's declared ones), so a
    secret that escapes every pattern is still caught."""
    global _KNOWN, _KNOWN_FORMS
    given = {v for v in values if v and len(v) >= MIN_SECRET_CHARS}
    known = set(_KNOWN) | given | {f for v in given for f in base64_forms(v)}
    _KNOWN = tuple(sorted(known, key=len, reverse=True))
    escaped = {jsontext.dumps(v)[1:-1] for v in _KNOWN}
    _KNOWN_FORMS = tuple(sorted(set(_KNOWN) | escaped, key=len, reverse=True))


def _replace_known(text: str) -> str:
    for secret in _KNOWN:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _lowered(text: str) -> str:
    """``text`` lowered as ``re.IGNORECASE`` folds it (see ``_FOLDS``)."""
    low = text.lower()
    if not text.isascii():
        for char, letter in _FOLDS:
            if char in low:
                low = low.replace(char, letter)
    return low


def may_need_redaction(text: str) -> bool:
    """``False`` guarantees ``redact`` leaves a value whose text (or JSON text) this is as is."""
    for secret in _KNOWN_FORMS:
        if secret in text:
            return True
    low = text.lower() if text.isascii() else _lowered(text)
    for needle in _PLAIN:
        if needle in low:
            return True
    for head, group in _GROUPS:
        if head in low and _re(group).search(low) is not None:
            return True
    if "+" in text and _re(_PHONE_LIKE).search(text) is not None:
        return True
    return "-" in text and _re(_SSN_LIKE).search(text) is not None


@lru_cache(maxsize=4096)
def is_secret_key(key: str) -> bool:
    """Whether a mapping key names a secret (cached: the same keys recur in every payload)."""
    return key.lower() not in _SAFE_KEYS and bool(_re(_SECRET_KEY).search(key))


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


def _apply(text: str, rules: tuple[_Rule, ...], *, gated: bool = True) -> str:
    """``text`` through ``rules`` (each only where one of its triggers is, unless not
    ``gated``), after every known secret value."""
    text = _replace_known(text)
    low = _lowered(text) if gated else ""
    for triggers, pattern, replacement in rules:
        if gated and triggers and not any(map(low.__contains__, triggers)):
            continue
        text = _re(pattern).sub(replacement, text)
    return text


def _scrub(text: str, _extra: tuple[str, ...]) -> str:
    return _apply(text, _PATTERNS)


def _scrub_secrets(text: str, _extra: tuple[str, ...]) -> str:
    return _apply(text, _SECRET_PATTERNS)


def _scrub_all(text: str, _extra: tuple[str, ...]) -> str:
    return _apply(text, _PATTERNS, gated=False)


def _redact_secrets_text(text: str, extra: tuple[str, ...]) -> str:
    return redact_text(text, extra, show_personal=True)


def redact(value: object, extra_secrets: Iterable[str] = (), *, show_personal: bool = False) -> Any:
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


def _redact_exhaustive(value: object) -> Any:
    """:func:`redact` applying every pattern to every string, without the prefilter: the
    reference the prefilter and the patterns' triggers are tested against."""
    return _redact(value, (), _scrub_all)


_TextFn = Callable[[str, tuple[str, ...]], str]


def _redact(value: object, extra: tuple[str, ...], text_fn: _TextFn) -> Any:
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
