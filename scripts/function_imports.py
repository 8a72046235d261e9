#!/usr/bin/env python
"""Count the imports inside functions in ``kneo`` (issue 57, item 2: dependencies at the top).

    python scripts/function_imports.py

A module's header should say what it depends on: an import inside a function hides a
dependency, so it stays there only for a real import cycle or a measured start-up cost (said
in a comment or the module docstring). This prints the total of function-level imports and,
per package, those between Kneo modules (``kneo...`` or relative), which
``tests/core/test_function_imports.py`` holds at or below its target. A migration keeps its
imports as released (a migration is the record of a schema: never rewritten).
"""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
Import = ast.Import | ast.ImportFrom


def function_imports(tree: ast.AST) -> list[Import]:
    """Every import whose nearest enclosing scope is a function (each once, nested or not)."""
    found: list[Import] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom) and in_function:
                found.append(child)
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                visit(child, True)
            elif isinstance(child, ast.ClassDef):
                visit(child, False)
            else:
                visit(child, in_function)

    visit(tree, False)
    return found


def is_internal(node: Import) -> bool:
    """Whether ``node`` imports a Kneo module (``kneo`` or ``kneo.*``, or relative)."""
    if isinstance(node, ast.ImportFrom):
        return node.level > 0 or _is_kneo(node.module or "")
    return any(_is_kneo(alias.name) for alias in node.names)


def _is_kneo(module: str) -> bool:
    return module == "kneo" or module.startswith("kneo.")


def package_of(path: Path, root: Path = ROOT) -> str:
    """``kneo/cli/main.py`` -> ``kneo.cli``; a top-level module counts as ``kneo``."""
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:2]) if len(parts) > 2 else parts[0]


def count(root: Path = ROOT) -> tuple[int, Counter[str]]:
    """The total of function-level imports under ``root/kneo``, and the internal ones by
    package."""
    total = 0
    internal: Counter[str] = Counter()
    for path in sorted((root / "kneo").rglob("*.py")):
        found = function_imports(ast.parse(path.read_text(encoding="utf-8"), str(path)))
        total += len(found)
        internal[package_of(path, root)] += sum(is_internal(node) for node in found)
    return total, internal


def main() -> None:
    """Print the counts, largest package first."""
    total, internal = count()
    print(f"function-level imports: {total}")
    print(f"between Kneo modules: {sum(internal.values())}")
    for package, n in internal.most_common():
        if n:
            print(f"  {package:<20} {n}")


if __name__ == "__main__":
    main()
