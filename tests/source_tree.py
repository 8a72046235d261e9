"""The package's source, read and parsed once per test process.

The structural tests (sizes, layering, the kernel's doors, imports) each walk the whole
package; parsing it once for all of them saves each test's own pass over ~360 files.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "kneo"


@functools.cache
def package_files() -> tuple[Path, ...]:
    """Every module file of the package, sorted."""
    return tuple(sorted(PACKAGE.rglob("*.py")))


@functools.cache
def source(path: Path) -> str:
    return path.read_text(encoding="utf-8")


@functools.cache
def parsed(path: Path) -> ast.Module:
    """``path``'s syntax tree (shared: callers only read it)."""
    return ast.parse(source(path), filename=str(path))
