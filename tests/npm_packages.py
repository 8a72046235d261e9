"""Node packages for tests, installed from a committed package.json and package-lock.json.

``node_modules_for(project)`` runs ``npm ci`` (exact versions from the lock file, no install
scripts) once per lock file into a cache directory (``KNEO_TEST_NPM_CACHE``, else the system
temp dir) and returns its ``node_modules``; concurrent pytest workers wait on a file lock
instead of installing twice. Without node and npm, or when the registry cannot be reached,
the test skips and says why, except in CI (``CI`` set), where it fails: the tests against
real Node clients can never be skipped silently there. Nothing Kneo runs downloads anything.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

_DONE = ".kneo-npm-ci-done"


def unavailable(reason: str) -> None:
    """Skip with ``reason``, or fail under CI."""
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but {reason}", pytrace=False)
    pytest.skip(reason)


def tool(name: str) -> str:
    """The path of ``node``/``npm``/an installed binary, or the test skips (fails in CI)."""
    found = shutil.which(name)
    if found is None:
        unavailable(f"{name} is not on PATH (install Node.js 20 or newer with npm)")
        raise AssertionError  # unreachable: unavailable() raised
    return found


def node_modules_for(project: Path, *, timeout: float = 420) -> Path:
    """``npm ci`` of ``project``'s package.json and package-lock.json, cached by their content."""
    npm = tool("npm")
    tool("node")
    manifest = [(project / name).read_bytes() for name in ("package.json", "package-lock.json")]
    digest = hashlib.sha256(b"\0".join(manifest)).hexdigest()[:16]
    root = Path(os.environ.get("KNEO_TEST_NPM_CACHE") or tempfile.gettempdir()) / "kneo-npm"
    cache = root / f"{project.name}-{digest}"
    root.mkdir(parents=True, exist_ok=True)
    with (root / f"{cache.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (cache / _DONE).exists():
            shutil.rmtree(cache, ignore_errors=True)
            cache.mkdir()
            (cache / "package.json").write_bytes(manifest[0])
            (cache / "package-lock.json").write_bytes(manifest[1])
            result = subprocess.run(
                [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=cache,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
            if result.returncode != 0:
                unavailable(f"npm ci for {project.name} failed: {result.stderr.strip()[-800:]}")
            (cache / _DONE).write_text(digest)
    return cache / "node_modules"


__all__ = ["node_modules_for", "tool", "unavailable"]
