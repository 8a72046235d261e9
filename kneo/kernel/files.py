"""The file door: a project file a spec names, read from inside the project only."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from kneo.documents import DocumentError
from kneo.errors import AccessDenied, ConfigError, ErrorCode


def read_project_file(root: Path, relative: str, *, field: str, max_chars: int) -> str:
    """The text of the file ``relative`` names inside the project ``root``: a path relative
    to the root, without ``..``, whose real path (symlinks followed) is still inside it, a
    regular file of UTF-8 text of at most ``max_chars`` characters. Anything else is refused
    naming ``field``: ``E_FILE_NOT_ALLOWED`` (outside the root), ``E_FILE_NOT_FOUND``,
    ``E_NOT_A_FILE`` (a directory, device or pipe), ``E_SCHEMA`` (too long, not UTF-8)."""
    if os.path.isabs(relative) or ".." in Path(relative).parts or "\\" in relative:
        raise AccessDenied(
            f"{field}: {relative!r} must be a path inside the project, relative to its root "
            "(no absolute path, no '..')",
            code=ErrorCode.E_FILE_NOT_ALLOWED,
            field=field,
        )
    real_root = os.path.realpath(root)
    real = os.path.realpath(os.path.join(real_root, relative))
    if os.path.commonpath([real_root, real]) != real_root:
        raise AccessDenied(
            f"{field}: {relative!r} leads out of the project (a symlink to a file outside it)",
            code=ErrorCode.E_FILE_NOT_ALLOWED,
            field=field,
        )
    try:
        st = os.stat(real)
    except OSError:
        raise ConfigError(
            f"{field}: {relative!r} does not exist in the project",
            code=ErrorCode.E_FILE_NOT_FOUND,
            field=field,
        ) from None
    if not stat.S_ISREG(st.st_mode):
        raise DocumentError(
            f"{field}: {relative!r} is not a regular file",
            code=ErrorCode.E_NOT_A_FILE,
            field=field,
        )
    with open(real, "rb") as handle:  # a bounded read: never more than the limit allows
        raw = handle.read(max_chars * 4 + 1)
    text = None
    if len(raw) <= max_chars * 4:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError(
                f"{field}: {relative!r} is not UTF-8 text", code=ErrorCode.E_SCHEMA, field=field
            ) from None
    if text is None or len(text) > max_chars:
        raise ConfigError(
            f"{field}: {relative!r} is over {max_chars:,} characters",
            code=ErrorCode.E_SCHEMA,
            field=field,
        )
    return text
