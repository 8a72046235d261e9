"""Files the CLI writes whole (signed documents, the profiles file): through a temporary
file and a rename, so a reader (a person, Git, another command) never sees half a file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, text: str, *, mode: int = 0o644, dir_mode: int = 0o777) -> None:
    """Write ``text`` to ``path``; the file has ``mode`` before a byte is written (a secret
    is never readable by others, even half written), missing folders ``dir_mode``."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=dir_mode)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
