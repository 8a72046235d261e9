"""Bundle and environment names: one pattern, checked wherever a name enters.

A name becomes a path component (``bundles/<name>/<env>.json``, ``environments/<env>.yaml``,
``<spec>.<env>.yaml`` overlays), a registry key, a lock and metadata key, and part of log
lines and audit events, so it is a plain identifier: 1-64 of ``A-Z a-z 0-9 . _ -``, starting
with a letter or digit (``..``, ``/``, spaces, NUL and ``+A`` can never be one). Signing,
verification, the controller, the registry, the CLI and the HTTP API all check this pattern.
"""

from __future__ import annotations

import re

from kneo.errors import ErrorCode, InvalidRequest

#: Bundle and environment names (also signing key ids).
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_NAME = re.compile(NAME_PATTERN)


def is_valid_name(value: object) -> bool:
    return isinstance(value, str) and _NAME.fullmatch(value) is not None


def check_name(value: str, *, kind: str = "name", field: str | None = None) -> str:
    """``value`` when it is a valid name; otherwise ``400 invalid_name`` naming the field."""
    if not is_valid_name(value):
        shown = value if len(value) <= 80 else value[:80] + "..."
        raise InvalidRequest(
            f"{kind} {shown!r} is not a valid name: 1-64 of A-Z a-z 0-9 . _ -, starting with "
            "a letter or digit",
            code=ErrorCode.invalid_name,
            field=field or kind.replace(" ", "_"),
            pattern=NAME_PATTERN,
        )
    return value
