"""The release's Python artifacts, built once per test run with the real front end.

``python -m build`` makes the sdist and then the wheel *from the sdist* (its default), so a
file the sdist forgets fails the wheel too. It builds a snapshot of the checkout (the files Git
tracks or would track, and ``.git`` for the version), never the checkout itself: setuptools
writes its release tree, ``build/`` and the egg-info beside the sources, and two builds in one
directory (two xdist workers) removed each other's files mid-copy. A fresh virtual environment gets the wheel
(``--no-deps``) and reaches its dependencies through one ``.pth`` line naming this
interpreter's site-packages: installing sixty dependencies again would cost over a minute of
a CI core and prove nothing about Kneo. A path line in a ``.pth`` file adds that directory
only (Python processes no ``.pth`` files inside it), so the checkout's editable install,
which is such a file there, stays invisible: ``kneo`` can only come from the wheel.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Built:
    sdist: Path
    wheel: Path
    #: what the build front end and backend printed (stdout and stderr)
    log: str = ""

    @property
    def version(self) -> str:
        return self.wheel.name.split("-")[1]


def build_distributions(out: Path) -> Built:
    """``python -m build`` of the checkout into ``out``."""
    try:
        import build  # noqa: F401  (the front end is a dev dependency; it runs as a module)
    except ImportError:
        pytest.fail("the 'build' package is missing: pip install -e '.[dev]'", pytrace=False)
    source = snapshot(out.parent / "source")
    result = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=420,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (out / "build.log").write_text(result.stdout + result.stderr)  # written last: "built"
    return read_distributions(out)


def read_distributions(out: Path) -> Built:
    """The artifacts and log that :func:`build_distributions` left in ``out``."""
    (sdist,) = out.glob("kneo_platform-*.tar.gz")
    (wheel,) = out.glob("kneo_platform-*-py3-none-any.whl")
    return Built(sdist=sdist, wheel=wheel, log=(out / "build.log").read_text())


def snapshot(target: Path) -> Path:
    """A copy of the checkout's sources (tracked and untracked-but-not-ignored) and its ``.git``."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():  # a tracked file deleted in the work tree is left out, as Git would
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    git = ROOT / ".git"
    if git.is_dir():
        shutil.copytree(git, target / ".git", symlinks=True)
    else:  # a linked worktree's pointer to its metadata
        shutil.copy2(git, target / ".git")
    return target


def install_into_fresh_venv(wheel: Path, target: Path) -> Path:
    """A new virtual environment holding ``wheel``; its ``bin`` directory."""
    venv.EnvBuilder(with_pip=False, symlinks=True).create(target)
    python = target / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    here = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (Path(purelib) / "_kneo_test_dependencies.pth").write_text("\n".join(sorted(here)) + "\n")
    # without PYTHONPATH: a checkout on it holds the build's kneo_platform.egg-info, which pip
    # would take for an installed kneo-platform and skip the wheel
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
         "--no-compile", "--quiet", str(wheel)],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return target / "bin"


__all__ = ["ROOT", "Built", "build_distributions", "install_into_fresh_venv", "read_distributions"]
