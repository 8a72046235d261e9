"""Python packages for tests that must not share Kneo's interpreter environment.

``venv_for(requirements)`` creates a virtual environment (``python -m venv``) and
``pip install``\\ s the pinned ``requirements`` into it, once per requirement set, in a cache
directory (``KNEO_TEST_PIP_CACHE``, else the system temp dir); concurrent pytest workers wait
on a file lock instead of installing twice. It returns the environment's Python. The
original platform's published clients (``kneo-client``, ``kneo-dash``) declare Python 3.12
but run on 3.11, so ``ignore_requires_python`` passes pip's flag of that name. As with
:mod:`npm_packages`, a registry that cannot be reached skips the test outside CI and fails it
in CI.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.npm_packages import unavailable

_DONE = ".kneo-pip-done"


def venv_for(
    requirements: tuple[str, ...],
    *,
    ignore_requires_python: bool = False,
    timeout: float = 420,
    base_python: str | None = None,
) -> Path:
    """The Python of a virtual environment holding exactly ``requirements`` (pinned), made
    by ``base_python`` (an interpreter path; this one by default)."""
    base = base_python or sys.executable
    key = "\0".join(sorted(requirements)) + f"\0{ignore_requires_python}\0{sys.version}"
    if base_python is not None:
        key += f"\0{base_python}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    root = Path(os.environ.get("KNEO_TEST_PIP_CACHE") or tempfile.gettempdir()) / "kneo-pip"
    venv = root / f"venv-{digest}"
    python = venv / "bin" / "python"
    root.mkdir(parents=True, exist_ok=True)
    with (root / f"{venv.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (venv / _DONE).exists():
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([base, "-m", "venv", str(venv)], check=True, timeout=120)
            flags = ["--ignore-requires-python"] if ignore_requires_python else []
            result = subprocess.run(
                [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                 *flags, *requirements],
                capture_output=True,
                text=True,
                timeout=timeout,
            )  # fmt: skip
            if result.returncode != 0:
                unavailable(f"pip install {' '.join(requirements)} failed: {result.stderr[-800:]}")
            (venv / _DONE).write_text(key)
    return python


__all__ = ["venv_for"]
