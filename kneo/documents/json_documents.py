"""JSON documents: a byte-level scan with strings blanked out counts bracket depth, values and
the longest run of digits before :mod:`json` (recursive) sees the text; ``NaN`` and
``Infinity`` are refused (not JSON, not canonicalizable), and so is an object that repeats a
member or a string holding half of a UTF-16 surrogate pair.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kneo.documents.limits import (
    LIMITS,
    DocumentError,
    DocumentLimits,
    duplicate_key,
    not_finite,
    over_limit,
    read_file,
)
from kneo.errors import ErrorCode

# A JSON string (escapes included), possessive so a match never backtracks.
_JSON_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+"', re.S)
# Text whose every string is closed, from the start: one attempt, linear. (Blanking strings
# in text with an unclosed one made the regex retry at every later quote: quadratic.)
_CLOSED_STRINGS = re.compile(r'(?:[^"]++|"(?:[^"\\]++|\\.)*+")*+', re.S)
_BRACKETS = re.compile(r"[\[\]{}]")
# An escaped NUL not itself escaped: an even number of backslashes before ``\u0000``.
_ESCAPED_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000", re.I)


#: Every byte but an ASCII digit becomes a space, every digit ``0``: a run of digits is then a
#: run of ``0`` that a substring search finds at C speed (a regex took 30-50 ns a character).
_DIGITS_ONLY = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))


def _digit_run_over(text: str, limit: int) -> bool:
    """Whether ``text`` holds more than ``limit`` ASCII digits in a row."""
    return b"0" * (limit + 1) in text.encode("utf-8", "surrogatepass").translate(_DIGITS_ONLY)


def check_json(text: str, *, source: str, limits: DocumentLimits = LIMITS) -> None:
    """Refuse JSON text over any limit, without parsing it."""
    if len(text) > limits.max_bytes:
        raise over_limit(limits, "max_bytes", source, f"{len(text)} characters")
    if _within(text, limits):
        return  # the common case, decided by C-level scans of the raw text
    closed = _CLOSED_STRINGS.match(text)
    if closed is None or closed.end() < len(text):
        at = closed.end() if closed is not None else 0
        line = text.count("\n", 0, at) + 1
        raise DocumentError(
            f"{source}:{line}: invalid JSON: unterminated string",
            code=ErrorCode.E_JSON,
            file=source,
            line=line,
        )
    skeleton = _JSON_STRING.sub('""', text)
    if _digit_run_over(skeleton, limits.max_number_digits):
        raise over_limit(limits, "max_number_digits", source, "a number has too many digits")
    opened = skeleton.count("[") + skeleton.count("{")
    if opened + skeleton.count(",") + 1 > limits.max_nodes:
        raise over_limit(limits, "max_nodes", source, "too many values")
    if opened <= limits.max_depth:
        return  # cannot be deeper than it has brackets
    depth = 0
    for match in _BRACKETS.finditer(skeleton):
        if match.group() in "[{":
            depth += 1
            if depth > limits.max_depth:
                raise over_limit(limits, "max_depth", source, "nested too deeply")
        else:
            depth -= 1


def _within(text: str, limits: DocumentLimits) -> bool:
    """Whether the raw text alone proves every limit holds. Brackets, commas and digits
    inside strings are counted too, so this only ever errs towards the precise check."""
    opened = text.count("[") + text.count("{")
    return (
        opened <= limits.max_depth
        and opened + text.count(",") < limits.max_nodes
        and not _digit_run_over(text, limits.max_number_digits)
    )


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


class _NotFinite(ValueError):
    def __init__(self, literal: str) -> None:
        super().__init__(literal)
        self.literal = literal


def _finite_float(literal: str) -> float:
    """``parse_float`` for :func:`json.loads`: ``1e999`` is infinity to Python, and would
    be stored as ``null``; it is refused instead."""
    number = float(literal)
    if not math.isfinite(number):
        raise _NotFinite(literal)
    return number


class _DuplicateMember(ValueError):
    """Raised by the pairs hook: an object names one member twice (located afterwards)."""


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook``: the object, unless a member repeats (one C-level ``dict`` per
    object and a length comparison: the common case costs no Python loop)."""
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _DuplicateMember
    return result


def _checked_hook(
    hook: Callable[[list[tuple[str, Any]]], Any],
) -> Callable[[list[tuple[str, Any]]], Any]:
    """A caller's hook, then the duplicate check on what it made of the pairs."""

    def checked(pairs: list[tuple[str, Any]]) -> Any:
        value = hook(pairs)
        if isinstance(value, dict) and len(value) != len(pairs):
            raise _DuplicateMember
        return value

    return checked


#: a decoder with this module's checks (an ``object_pairs_hook`` may be given)
_decoder = functools.partial(
    json.JSONDecoder, parse_constant=_refuse_constant, parse_float=_finite_float
)
#: the decoder of documents without a caller's hook (``json.loads`` with options builds one,
#: and its scanner, per call; ``json`` itself shares one across threads)
_DECODER = _decoder(object_pairs_hook=_unique_object)

# a JSON string (escapes included) or one structural character
_JSON_TOKEN = re.compile(r'"(?:[^"\\]++|\\.)*+"|[{}\[\],]')


def _member_path(frames: list[list[Any]]) -> str:
    """``a.b[2].c`` of the innermost open value (each frame: kind, keys, key or index)."""
    out = ""
    for kind, _keys, at in frames:
        if kind == "[":
            out += f"[{at}]"
        elif at is not None:
            out += f".{at}" if out else str(at)
    return out or "<root>"


def _duplicate_member(text: str) -> tuple[str, int, int, str] | None:
    """The first repeated member: ``(key, first offset, second offset, path)``. Only run
    once a document was refused for one; a flat walk over its tokens, never recursive."""
    frames: list[list[Any]] = []  # [kind, {key: offset} | None, current key | index]
    expect_key = False
    for match in _JSON_TOKEN.finditer(text):
        token = match.group()
        if token == "{":
            frames.append(["{", {}, None])
            expect_key = True
        elif token == "[":
            frames.append(["[", None, 0])
            expect_key = False
        elif token in "]}":
            if frames:
                frames.pop()
            expect_key = False
        elif token == ",":
            if frames and frames[-1][0] == "[":
                frames[-1][2] += 1
            expect_key = bool(frames) and frames[-1][0] == "{"
        elif expect_key and frames:
            key = json.loads(token)
            keys: dict[str, int] = frames[-1][1]
            frames[-1][2] = key
            if key in keys:
                return key, keys[key], match.start(), _member_path(frames)
            keys[key] = match.start()
            expect_key = False
    return None


def _duplicate_json(source: str, text: str) -> DocumentError:
    found = _duplicate_member(text)
    if found is None:  # cannot happen for text the parser read; still a clear refusal
        return DocumentError(
            f"{source}: an object repeats a member", code=ErrorCode.E_DUPLICATE_KEY, file=source
        )
    key, first, second, path = found
    return duplicate_key(source, key, path, _position(text, first), _position(text, second))


# An escaped UTF-16 surrogate (``\ud800``-``\udfff``) not itself escaped.
_ESCAPED_SURROGATE = re.compile(r"(?<!\\)(?:\\\\)*\\u[dD][89a-fA-F]", re.I)


_SURROGATE_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*(\\u[dD]([89a-fA-F])[0-9a-fA-F]{2})")


def _position(text: str, at: int) -> tuple[int | None, int | None]:
    """1-based line and column of offset ``at`` (``None`` when not found)."""
    if at < 0:
        return None, None
    return text.count("\n", 0, at) + 1, at - text.rfind("\n", 0, at)


def _lone_surrogate_at(text: str) -> int | None:
    """Where the first escape of half a surrogate pair starts (valid JSON, but no UTF-8
    text can hold it: every store and response would fail on it), or ``None``. A pair is a
    high escape (``\\ud800``-``\\udbff``) directly followed by a low one."""
    if _ESCAPED_SURROGATE.search(text) is None:
        return None
    high: re.Match[str] | None = None
    for match in _SURROGATE_ESCAPE.finditer(text):
        if match.group(2) in "89abAB":  # a high half
            if high is not None:
                return high.start(1)
            high = match
        elif high is not None and high.end(1) == match.start(1):
            high = None  # a pair
        else:
            return match.start(1)
    return high.start(1) if high is not None else None


def parse_json(
    data: bytes | str,
    *,
    source: str,
    limits: DocumentLimits = LIMITS,
    object_pairs_hook: Callable[[list[tuple[str, Any]]], Any] | None = None,
    forbid_nul: bool = False,
) -> Any:
    """Parse one JSON document within ``limits``; ``E_JSON`` when it is not JSON (UTF-8).

    ``forbid_nul``: refuse ``\\u0000`` in strings (text columns cannot hold it on PostgreSQL).
    ``object_pairs_hook`` may raise ``ValueError`` subclasses of its own; they pass through.
    An object that repeats a member is ``E_DUPLICATE_KEY`` either way (the hook's dict is
    checked after it).
    """
    text = data if isinstance(data, str) else _utf8_text(data, source, limits)
    check_json(text, source=source, limits=limits)
    if forbid_nul and "\\" in text and _ESCAPED_NUL.search(text):
        raise DocumentError(
            f"{source}: strings may not contain NUL (\\u0000)", code=ErrorCode.E_JSON, file=source
        )
    value = _decoded(text, source, object_pairs_hook)
    lone = _lone_surrogate_at(text) if "\\" in text else None
    if lone is not None:
        line, column = _position(text, lone)
        raise DocumentError(
            f"{source}:{line}: a string holds half of a UTF-16 surrogate pair "
            f"({text[lone : lone + 6]} at column {column}), which no text can store",
            code=ErrorCode.E_JSON,
            file=source,
            line=line,
            column=column,
        )
    return value


def _utf8_text(data: bytes, source: str, limits: DocumentLimits) -> str:
    """``data`` as text: at most ``limits.max_bytes``, UTF-8 (``E_JSON`` when not)."""
    if len(data) > limits.max_bytes:
        raise over_limit(limits, "max_bytes", source, f"{len(data)} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DocumentError(
            f"{source}: not UTF-8 JSON ({exc.reason})", code=ErrorCode.E_JSON, file=source
        ) from None


def _decoded(
    text: str, source: str, object_pairs_hook: Callable[[list[tuple[str, Any]]], Any] | None
) -> Any:
    """What :mod:`json` reads in ``text`` (already within limits), each refusal of the
    decoder an error naming ``source``: a repeated member, a number out of range, a syntax
    error; the caller's hook's own ``ValueError`` subclasses pass through."""
    try:
        decoder = (
            _DECODER
            if object_pairs_hook is None
            else _decoder(object_pairs_hook=_checked_hook(object_pairs_hook))
        )
        return decoder.decode(text)
    except _DuplicateMember:
        raise _duplicate_json(source, text) from None
    except _NotFinite as exc:
        line, column = _position(text, text.find(exc.literal))
        raise not_finite(source, exc.literal, line, column) from None
    except json.JSONDecodeError as exc:
        raise DocumentError(
            f"{source}:{exc.lineno}: invalid JSON: {exc.msg} (column {exc.colno})",
            code=ErrorCode.E_JSON,
            file=source,
            line=exc.lineno,
            column=exc.colno,
        ) from None
    except ValueError as exc:
        if object_pairs_hook is not None and type(exc) is not ValueError:
            raise  # the hook's own refusal
        raise DocumentError(
            f"{source}: invalid JSON: {exc}", code=ErrorCode.E_JSON, file=source
        ) from None


def load_json_file(
    path: str | os.PathLike[str], *, what: str = "file", limits: DocumentLimits = LIMITS
) -> Any:
    """Read and parse a JSON file within ``limits``."""
    return parse_json(
        read_file(path, what=what, limits=limits), source=str(Path(path)), limits=limits
    )
