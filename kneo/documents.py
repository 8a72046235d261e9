"""The one bounded way in for untrusted YAML and JSON: files, request bodies, Git blobs.

Python's parsers are recursive: libyaml's composer (C, no recursion check) overflows the C
stack around 50,000 nested levels and kills the process; ``json`` raises ``RecursionError``
near 1,000; an integer of more than 4,300 digits raises ``ValueError``; a YAML alias bomb
("billion laughs") expands to gigabytes downstream. So every document is measured *before*
the recursive parser sees it, by code that never recurses:

* YAML: a pass over libyaml's event stream (a flat sequence: start/end of collections,
  scalars, aliases) counts depth, nodes with every alias expanded, aliases, and plain
  numbers' digits;
* JSON: a byte-level scan with strings blanked out counts bracket depth, values and the
  longest run of digits; ``NaN``/``Infinity`` are refused (not JSON, not canonicalizable).

A breach raises :class:`DocumentError` naming the source and the limit (``E_DOCUMENT_TOO_LARGE``,
``E_DOCUMENT_TOO_DEEP``, ``E_DOCUMENT_TOO_COMPLEX``, ``E_NUMBER_TOO_LONG``); a file that is not
a regular file (a device, a FIFO, a symlink to ``/dev/zero``) is ``E_NOT_A_FILE`` and is
never read.

**One reading.** A mapping that holds one key twice (``required_signatures: 2`` and, further
down, ``required_signatures: 1``) is ``E_DUPLICATE_KEY`` naming both lines and the field:
parsers and people disagree on which one counts (PyYAML and ``json`` take the last, a
reviewer reads the first). Keys are compared as the document reads them (``"a"`` and ``a``,
``0x10`` and ``16``, ``yes`` and ``true`` are one key each); a YAML merge (``<<: *base``)
is the one way to override a key, and two merge keys in one mapping are a duplicate too.

Pure but for :func:`read_file`, which reads what it is given.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kneo.errors import ErrorCode, PayloadTooLarge, SpecError


@dataclass(frozen=True)
class DocumentLimits:
    """What any one document may hold. Generous for specs, bundles and policies (a large
    spec is a few hundred nodes, ten levels deep); far below what hurts the process."""

    max_bytes: int = 8 * 1024 * 1024
    max_depth: int = 64
    #: Nodes (scalars and collections) with every YAML alias expanded.
    max_nodes: int = 200_000
    max_aliases: int = 1_000
    #: Longest run of digits in a number (Python refuses ``int`` above 4,300 digits).
    max_number_digits: int = 256


LIMITS = DocumentLimits()


class DocumentError(SpecError):
    """A document breaks a limit, is not a regular file, or is not JSON/YAML at all."""

    code = ErrorCode.E_DOCUMENT_INVALID


class DocumentTooLarge(DocumentError):
    code = ErrorCode.E_DOCUMENT_TOO_LARGE
    http_status = PayloadTooLarge.http_status


#: Which error code a document over each limit gets.
_LIMIT_CODES = {
    "max_bytes": ErrorCode.E_DOCUMENT_TOO_LARGE,
    "max_depth": ErrorCode.E_DOCUMENT_TOO_DEEP,
    "max_nodes": ErrorCode.E_DOCUMENT_TOO_COMPLEX,
    "max_aliases": ErrorCode.E_DOCUMENT_TOO_COMPLEX,
    "max_number_digits": ErrorCode.E_NUMBER_TOO_LONG,
}


def _too(
    limits: DocumentLimits, field: str, source: str, what: str, line: int | None = None
) -> DocumentError:
    """The error for a document over ``limits.<field>``; its code follows from the limit."""
    code = _LIMIT_CODES[field]
    limit = getattr(limits, field)
    cls = DocumentTooLarge if code == "E_DOCUMENT_TOO_LARGE" else DocumentError
    where = f"{source}:{line}" if line else source
    return cls(
        f"{where}: {what} (limit: {field} = {limit})",
        code=code,
        file=source,
        line=line,
        limit=field,
        maximum=limit,
    )


# --------------------------------------------------------------------------- files


def read_file(
    path: str | os.PathLike[str], *, what: str = "file", limits: DocumentLimits = LIMITS
) -> bytes:
    """The bytes of a regular file of at most ``limits.max_bytes``.

    Opened non-blocking (a FIFO cannot hang the open) and checked with ``fstat`` on the open
    descriptor, so what is read is what was checked, symlinks included."""
    source = str(path)
    try:
        fd = os.open(source, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise SpecError(
            f"{source}: {what} not found", code=ErrorCode.E_FILE_NOT_FOUND, file=source
        ) from None
    except OSError as exc:
        raise SpecError(
            f"{source}: cannot read: {exc.strerror}", code=ErrorCode.E_FILE_NOT_FOUND, file=source
        ) from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise SpecError(
                f"{source}: is a directory, expected a {what}",
                code=ErrorCode.E_FILE_NOT_FOUND,
                file=source,
            )
        if not stat.S_ISREG(mode):
            raise DocumentError(
                f"{source}: not a regular file (a device, pipe or socket); a {what} must be one",
                code=ErrorCode.E_NOT_A_FILE,
                file=source,
            )
        chunks: list[bytes] = []
        left = limits.max_bytes + 1
        while left > 0 and (chunk := os.read(fd, min(left, 1 << 20))):
            chunks.append(chunk)
            left -= len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > limits.max_bytes:
        raise _too(limits, "max_bytes", source, f"over {limits.max_bytes} bytes")
    return data


def read_text(
    path: str | os.PathLike[str], *, what: str = "file", limits: DocumentLimits = LIMITS
) -> str:
    """:func:`read_file` decoded as UTF-8 (``E_YAML`` when it is not)."""
    data = read_file(path, what=what, limits=limits)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(
            f"{path}: not UTF-8 text ({exc.reason})", code=ErrorCode.E_YAML, file=str(path)
        ) from None


# --------------------------------------------------------------------------- JSON

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
        raise _too(limits, "max_bytes", source, f"{len(text)} characters")
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
        raise _too(limits, "max_number_digits", source, "a number has too many digits")
    opened = skeleton.count("[") + skeleton.count("{")
    if opened + skeleton.count(",") + 1 > limits.max_nodes:
        raise _too(limits, "max_nodes", source, "too many values")
    if opened <= limits.max_depth:
        return  # cannot be deeper than it has brackets
    depth = 0
    for match in _BRACKETS.finditer(skeleton):
        if match.group() in "[{":
            depth += 1
            if depth > limits.max_depth:
                raise _too(limits, "max_depth", source, "nested too deeply")
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
    return _duplicate(source, key, path, _position(text, first), _position(text, second))


def _duplicate(
    source: str,
    key: Any,
    path: str,
    first: tuple[int | None, int | None],
    again: tuple[int | None, int | None],
) -> DocumentError:
    """``E_DUPLICATE_KEY`` naming the field and both places (``(line, column)`` each)."""
    if first[0] == again[0]:
        where = f"on line {again[0]} (columns {first[1]} and {again[1]})"
    else:
        where = f"(lines {first[0]} and {again[0]})"
    return DocumentError(
        f"{source}:{again[0]}: {path}: the key {key!r} is given twice {where}; a document is "
        "read one way only: keep one",
        code=ErrorCode.E_DUPLICATE_KEY,
        file=source,
        line=again[0],
        column=again[1],
        first_line=first[0],
        path=path,
        key=str(key),
    )


def _not_finite(
    source: str, literal: str, line: int | None, column: int | None = None
) -> DocumentError:
    where = f"{source}:{line}" if line else source
    shown = literal if len(literal) <= 40 else literal[:40] + "..."
    return DocumentError(
        f"{where}: the number {shown} is out of range (not a finite number)",
        code=ErrorCode.E_NUMBER_OUT_OF_RANGE,
        file=source,
        line=line,
        column=column,
    )


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
    if isinstance(data, bytes):
        if len(data) > limits.max_bytes:
            raise _too(limits, "max_bytes", source, f"{len(data)} bytes")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DocumentError(
                f"{source}: not UTF-8 JSON ({exc.reason})", code=ErrorCode.E_JSON, file=source
            ) from None
    else:
        text = data
    check_json(text, source=source, limits=limits)
    if forbid_nul and "\\" in text and _ESCAPED_NUL.search(text):
        raise DocumentError(
            f"{source}: strings may not contain NUL (\\u0000)", code=ErrorCode.E_JSON, file=source
        )
    try:
        decoder = (
            _DECODER
            if object_pairs_hook is None
            else _decoder(object_pairs_hook=_checked_hook(object_pairs_hook))
        )
        value = decoder.decode(text)
    except _DuplicateMember:
        raise _duplicate_json(source, text) from None
    except _NotFinite as exc:
        line, column = _position(text, text.find(exc.literal))
        raise _not_finite(source, exc.literal, line, column) from None
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


# --------------------------------------------------------------------------- YAML


def _yaml_loader() -> Any:
    """libyaml's loader when present (an order of magnitude faster), else pure Python."""
    import yaml

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_VALUE_TAG = "tag:yaml.org,2002:value"


class _DuplicateKey(Exception):
    """Raised while constructing: ``mapping`` names one key twice (first, then again)."""

    def __init__(self, key: Any, mapping: Any, first: Any, again: Any) -> None:
        super().__init__(key)
        self.key, self.mapping, self.first, self.again = key, mapping, first, again


@functools.cache
def _one_reading_loader() -> Any:
    """:func:`_yaml_loader` whose constructor refuses a mapping that names a key twice.

    The check runs in ``flatten_mapping``, which every mapping passes through before it is
    built (and a merged one before it is merged), on the keys as written: once a mapping is
    flattened its merged keys sit beside its own, which is how a merge overrides."""
    base = _yaml_loader()

    class OneReadingLoader(base):  # type: ignore[misc, valid-type]
        def __init__(self, stream: str) -> None:
            super().__init__(stream)
            self._checked: set[int] = set()

        def flatten_mapping(self, node: Any) -> None:
            if id(node) not in self._checked:
                self._checked.add(id(node))
                self._refuse_duplicates(node)
            super().flatten_mapping(node)

        def _refuse_duplicates(self, node: Any) -> None:
            seen: dict[Any, Any] = {}
            for key_node, _value in node.value:
                tag = key_node.tag
                if tag == _STR_TAG:
                    key: Any = key_node.value
                elif tag == _MERGE_TAG:
                    key = "<<"
                elif tag == _VALUE_TAG:
                    key = "="
                else:  # ``16`` and ``0x10``, ``true`` and ``yes``: one key as read
                    key = self.construct_object(key_node, deep=True)
                    try:
                        hash(key)
                    except TypeError:
                        continue  # an unhashable key: the constructor's own error
                first = seen.get(key)
                if first is not None:
                    raise _DuplicateKey(key, node, first, key_node)
                seen[key] = key_node

    return OneReadingLoader


def _yaml_path(root: Any, target: Any) -> str:
    """``a.b[2]`` of the node ``target`` under ``root`` (a flat walk; error path only)."""
    import yaml

    stack: list[tuple[Any, tuple[str | int, ...]]] = [(root, ())]
    seen: set[int] = set()
    while stack:
        node, path = stack.pop()
        if node is target:
            return _format_path(path)
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                stack.append((value_node, (*path, str(getattr(key_node, "value", "?")))))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, (*path, i)) for i, item in enumerate(node.value))
    return "<root>"


def _format_path(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "<root>"


def _load_yaml(text: str, source: str) -> Any:
    """The one document of ``text``, every mapping read one way (``E_DUPLICATE_KEY``)."""
    loader = _one_reading_loader()(text)
    node = None
    try:
        node = loader.get_single_node()
        return None if node is None else loader.construct_document(node)
    except _DuplicateKey as dup:
        mapping_path = _yaml_path(node, dup.mapping)
        key_text = str(dup.key)
        path = key_text if mapping_path == "<root>" else f"{mapping_path}.{key_text}"
        first, again = dup.first.start_mark, dup.again.start_mark
        raise _duplicate(
            source,
            dup.key,
            path,
            (first.line + 1, first.column + 1),
            (again.line + 1, again.column + 1),
        ) from None
    finally:
        loader.dispose()


#: libyaml's message for its own nesting bound
_LIBYAML_TOO_DEEP = "exceeded maximum nesting depth"
_NUMBER_CHARS = frozenset("0123456789+-._:eExXoObBabcdefABCDEF")
_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"


def _number_tag(event: Any) -> str | None:
    """The int or float tag YAML gives a scalar event (plain, or tagged ``!!int "..."``)."""
    value: str = event.value
    if event.tag in (_INT_TAG, _FLOAT_TAG):
        return str(event.tag)
    if event.style or event.tag is not None or not value:
        return None
    numeric = (value[0].isdigit() or value[0] in "+-.") and _NUMBER_CHARS.issuperset(value)
    if not numeric and value.lower().lstrip("+-") not in (".inf", ".nan"):
        return None
    import yaml

    resolve: Any = yaml.resolver.Resolver().resolve
    tag = resolve(yaml.ScalarNode, value, (True, False))
    return str(tag) if tag in (_INT_TAG, _FLOAT_TAG) else None


def _number_problem(event: Any, digits: int) -> str | None:
    """Why a numeric scalar cannot be read safely: more than ``digits`` digits however they
    are written (``1_000``, ``0xFF``, ``1:30:00``: grouping characters bypass a count of
    digits in a row), or a float that is not finite (``1.0e999``, ``.inf``), which JSON has
    no value for."""
    tag = _number_tag(event)
    if tag is None:
        return None
    value: str = event.value
    if sum(c.isalnum() for c in value) > digits:
        return "too_long"
    if tag == _FLOAT_TAG:
        try:
            number = float(value.replace("_", "").replace(".inf", "inf").replace(".Inf", "inf"))
        except ValueError:
            return "not_finite" if "inf" in value.lower() or "nan" in value.lower() else None
        if not math.isfinite(number):
            return "not_finite"
    return None


def check_yaml(text: str, *, source: str, limits: DocumentLimits = LIMITS) -> None:
    """Refuse YAML over any limit by walking libyaml's event stream (never recursive).

    An alias counts as the nodes and levels it stands for, so an alias bomb is refused
    before anything expands it; an alias of a node that contains it (a recursive document)
    is refused. Syntax errors are left to the parser proper, which reports their line."""
    import yaml

    if len(text) > limits.max_bytes:
        raise _too(limits, "max_bytes", source, f"{len(text)} characters")
    walk = _YamlWalk(source, limits)
    try:
        event: Any
        for event in yaml.parse(text, Loader=_yaml_loader()):
            kind = type(event)
            if kind is yaml.ScalarEvent:
                walk.scalar(event)
            elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
                walk.open(event)
            elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
                walk.close()
            elif kind is yaml.AliasEvent:
                walk.alias(event)
    except yaml.MarkedYAMLError as exc:
        if exc.problem == _LIBYAML_TOO_DEEP:
            # libyaml's own bound (1,000 levels since PyYAML 6.0.4's bundled libyaml), far
            # above ``max_depth``: its scanner reads a line ahead and meets it first
            mark = exc.problem_mark
            line = mark.line + 1 if mark is not None else None
            raise _too(limits, "max_depth", source, "nested too deeply", line) from None
        return  # a syntax error: parse_yaml reports it with file and line
    except yaml.YAMLError:
        return


class _YamlWalk:
    """The running counts of :func:`check_yaml`: nodes, aliases, open collections, and what
    each anchor stands for."""

    def __init__(self, source: str, limits: DocumentLimits) -> None:
        self.source = source
        self.limits = limits
        self.nodes = 0
        self.aliases = 0
        #: one frame per open collection: [anchor, nodes before it, its level, deepest inside]
        self.open_: list[list[Any]] = []
        self.anchored: dict[str, tuple[int, int]] = {}  # anchor -> (nodes, levels)

    def add(self, event: Any, count: int, levels: int) -> None:
        """``count`` nodes spanning ``levels`` levels below the innermost open collection."""
        line = event.start_mark.line + 1
        self.nodes += count
        if self.nodes > self.limits.max_nodes:
            raise _too(
                self.limits, "max_nodes", self.source, "too many nodes (aliases expanded)", line
            )
        deepest = len(self.open_) + levels
        if deepest > self.limits.max_depth:
            raise _too(self.limits, "max_depth", self.source, "nested too deeply", line)
        if self.open_ and deepest > self.open_[-1][3]:
            self.open_[-1][3] = deepest

    def scalar(self, event: Any) -> None:
        problem = _number_problem(event, self.limits.max_number_digits)
        line = event.start_mark.line + 1
        if problem == "too_long":
            raise _too(
                self.limits, "max_number_digits", self.source, "a number has too many digits", line
            )
        if problem == "not_finite":
            raise _not_finite(self.source, event.value, line)
        self.add(event, 1, 0)
        if event.anchor:
            self.anchored[event.anchor] = (1, 0)

    def open(self, event: Any) -> None:
        self.add(event, 1, 1)
        level = len(self.open_) + 1
        self.open_.append([event.anchor, self.nodes - 1, level, level])

    def close(self) -> None:
        anchor, before, level, deepest = self.open_.pop()
        if anchor:
            self.anchored[anchor] = (self.nodes - before, deepest - level + 1)
        if self.open_ and deepest > self.open_[-1][3]:
            self.open_[-1][3] = deepest

    def alias(self, event: Any) -> None:
        self.aliases += 1
        line = event.start_mark.line + 1
        if self.aliases > self.limits.max_aliases:
            raise _too(self.limits, "max_aliases", self.source, "too many aliases", line)
        if event.anchor in self.anchored:
            self.add(event, *self.anchored[event.anchor])
        elif any(frame[0] == event.anchor for frame in self.open_):
            raise DocumentError(
                f"{self.source}:{line}: alias *{event.anchor} refers to a node containing it",
                code=ErrorCode.E_DOCUMENT_TOO_COMPLEX,
                file=self.source,
                line=line,
            )
        # else: an undefined alias, which the parser proper reports with its line


def parse_yaml(text: str, *, source: str, limits: DocumentLimits = LIMITS) -> Any:
    """Parse one YAML document within ``limits``; a syntax error is ``E_YAML`` with
    ``source:line``."""
    import yaml

    check_yaml(text, source=source, limits=limits)
    try:
        return _load_yaml(text, source)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        column = mark.column + 1 if mark is not None else None
        problem = exc.problem or exc.context or "invalid YAML"
        where = f"{source}:{line}" if line else source
        raise SpecError(
            f"{where}: invalid YAML: {problem}",
            code=ErrorCode.E_YAML,
            file=source,
            line=line,
            column=column,
        ) from None
    except yaml.YAMLError as exc:
        raise SpecError(
            f"{source}: invalid YAML: {exc}", code=ErrorCode.E_YAML, file=source
        ) from None


def load_yaml_file(
    path: str | os.PathLike[str], *, what: str = "file", limits: DocumentLimits = LIMITS
) -> Any:
    """Read and parse a YAML file within ``limits``."""
    return parse_yaml(read_text(path, what=what, limits=limits), source=str(path), limits=limits)


def load_json_file(
    path: str | os.PathLike[str], *, what: str = "file", limits: DocumentLimits = LIMITS
) -> Any:
    """Read and parse a JSON file within ``limits``."""
    return parse_json(
        read_file(path, what=what, limits=limits), source=str(Path(path)), limits=limits
    )
