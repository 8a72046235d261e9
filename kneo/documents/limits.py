"""What one document may hold, how a document over it is refused, and reading a file within it.

Every refusal here is a :class:`DocumentError` naming the source and the limit; the JSON
and YAML readers (:mod:`kneo.documents.json_documents`, :mod:`kneo.documents.yaml_documents`)
share them, so a duplicate key or an out-of-range number reads the same in either.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
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


def over_limit(
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


def duplicate_key(
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


def not_finite(
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
        raise over_limit(limits, "max_bytes", source, f"over {limits.max_bytes} bytes")
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
