"""Which Kneo this is: version, source revision, Python and database schema revision.

One function, :func:`version_info`, answers for every surface (``kneo version``,
``GET /v1/version``, ``kneo_build_info``, the User-Agent of outgoing webhooks) so they never
disagree. The version is the Git tag the package was built from (setuptools-scm writes it into
``kneo/_version.py`` at build time, with the commit); a source tree that was never built falls
back to the installed distribution's metadata, then to ``0.0.0+unknown``. The revision is the
image's ``KNEO_SERV_BUILD_REVISION`` when set (the image knows it better than the wheel inside
it), else the commit checked out when the package runs from a Git checkout (an editable
install: its ``_version.py`` was written at install time and names that commit, not today's),
else the commit the build recorded, else ``unknown``.
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
#: The directory holding the package: a Git checkout's root for an editable install,
#: ``site-packages`` for a wheel (no ``.git`` there).
SOURCE_ROOT = Path(__file__).resolve().parents[1]
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


def _git_dir(root: Path) -> Path | None:
    """The Git directory of a checkout at ``root`` (a linked worktree's ``.git`` is a file)."""
    dot_git = root / ".git"
    if dot_git.is_dir():
        return dot_git
    if dot_git.is_file():
        line = dot_git.read_text(encoding="utf-8", errors="replace").strip()
        if line.startswith("gitdir:"):
            found = Path(line.removeprefix("gitdir:").strip())
            return found if found.is_absolute() else (root / found).resolve()
    return None


def checkout_revision(root: Path = SOURCE_ROOT) -> str | None:
    """The commit checked out at ``root``, read from Git's files (no ``git`` process), or None.

    Loose and packed refs, a detached HEAD and a linked worktree (whose refs live in the main
    repository's directory, named by ``commondir``) are read.
    """
    git_dir = _git_dir(root)
    if git_dir is None:
        return None
    try:
        head = (git_dir / "HEAD").read_text(encoding="utf-8").strip()
        if not head.startswith("ref:"):
            return head or None
        ref = head.removeprefix("ref:").strip()
        common = git_dir
        if (git_dir / "commondir").is_file():
            common = (
                git_dir / (git_dir / "commondir").read_text(encoding="utf-8").strip()
            ).resolve()
        for base in (git_dir, common):
            if (base / ref).is_file():
                return (base / ref).read_text(encoding="utf-8").strip() or None
        packed = common / "packed-refs"
        if packed.is_file():
            for line in packed.read_text(encoding="utf-8").splitlines():
                sha, _, name = line.partition(" ")
                if name.strip() == ref and not line.startswith(("#", "^")):
                    return sha
    except OSError:
        return None
    return None


def _revision(commit: str | None) -> str:
    given = (os.environ.get("KNEO_SERV_BUILD_REVISION") or "").strip()
    if given and given != "unknown":
        return given
    checked_out = checkout_revision()
    if checked_out:
        return checked_out[:12]
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
    "checkout_revision",
    "package_version",
    "schema_revision",
    "version_info",
]
