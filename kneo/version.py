"""Which Kneo this is: version, source revision, Python and database schema revision.

One function, :func:`version_info`, answers for every surface (``kneo version``,
``GET /v1/version``, ``kneo_build_info``, the User-Agent of outgoing webhooks) so they never
disagree. The version is the Git tag the package was built from (setuptools-scm writes it into
``kneo/_version.py`` at build time, with the commit); a source tree that was never built falls
back to the installed distribution's metadata, then to ``0.0.0+unknown``. The revision is the
image's ``KNEO_SERV_BUILD_REVISION`` when set (the image knows it better than the wheel inside
it), else the commit the build recorded, else ``unknown``.
"""

from __future__ import annotations

import os
import platform
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

#: The distribution's name on the package index (``pip install kneo-platform``).
DISTRIBUTION = "kneo-platform"
#: The migration scripts (``NNNN_<what>.py``, numbered in order): the newest number is the
#: schema revision this code ships. Read from the file names, not by importing the store
#: (this module sits below it); a test keeps it equal to ``kneo.store.migrate.HEAD_REVISION``.
MIGRATIONS = Path(__file__).resolve().parent / "store" / "migrations" / "versions"
UNKNOWN_VERSION = "0.0.0+unknown"


@dataclass(frozen=True)
class VersionInfo:
    """What ``kneo version -o json`` prints and ``GET /v1/version`` answers."""

    version: str
    revision: str
    python: str
    schema_revision: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _built() -> tuple[str | None, str | None]:
    """``(version, commit)`` recorded by the build, or ``(None, None)`` in a bare source tree."""
    try:
        from kneo import _version
    except ImportError:
        return None, None
    commit = getattr(_version, "commit_id", None) or getattr(_version, "__commit_id__", None)
    return str(_version.version), str(commit) if commit else None


def package_version() -> str:
    """The version string alone (cheap: no metadata scan when the build wrote it)."""
    version, _ = _built()
    if version:
        return version
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed(DISTRIBUTION)
    except PackageNotFoundError:
        return UNKNOWN_VERSION


def _revision(commit: str | None) -> str:
    given = (os.environ.get("KNEO_SERV_BUILD_REVISION") or "").strip()
    if given and given != "unknown":
        return given
    if commit:
        return commit.removeprefix("g")
    return "unknown"


def schema_revision() -> str:
    """The newest migration's number (``"0021"``), or ``unknown`` without the scripts."""
    numbers = [
        found.group(1)
        for path in MIGRATIONS.glob("*.py")
        if (found := re.match(r"^(\d{4})_", path.name))
    ]
    return max(numbers) if numbers else "unknown"


def version_info() -> VersionInfo:
    """This installation's version record."""
    _, commit = _built()
    return VersionInfo(
        version=package_version(),
        revision=_revision(commit),
        python=platform.python_version(),
        schema_revision=schema_revision(),
    )


#: ``kneo.__version__``, computed once.
__version__ = package_version()

__all__ = [
    "DISTRIBUTION",
    "UNKNOWN_VERSION",
    "VersionInfo",
    "__version__",
    "package_version",
    "schema_revision",
    "version_info",
]
