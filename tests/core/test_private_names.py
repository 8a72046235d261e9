"""No module imports another module's private name: what modules share is public, named for
what it is (a shared helper in its own module, e.g. ``kneo.cli.signing``)."""

from __future__ import annotations

import ast

from tests import source_tree

#: Private names still shared, each to become public where it lives (may only shrink; the
#: engine's run, its programs and its control-flow signals became public in issue 74).
ALLOWED: set[tuple[str, str]] = set()


#: Private modules the build writes (setuptools-scm's ``kneo/_version.py``, git-ignored): a
#: checkout that was never installed has no file to find, and they are still modules.
BUILT = {("kneo", "_version")}


def _private_imports() -> dict[tuple[str, str], list[str]]:
    found: dict[tuple[str, str], list[str]] = {}
    for path in source_tree.package_files():
        for node in ast.walk(source_tree.parsed(path)):
            if not isinstance(node, ast.ImportFrom) or not node.module or node.level:
                continue
            for alias in node.names:
                name = alias.name
                if not name.startswith("_") or name.startswith("__"):
                    continue
                if (node.module, name) in BUILT or (
                    (source_tree.PACKAGE.parent / node.module.replace(".", "/") / name)
                    .with_suffix(".py")
                    .exists()
                ):
                    continue  # a module, not a name
                found.setdefault((node.module, name), []).append(str(path))
    return found


def test_no_module_imports_another_modules_private_name() -> None:
    shared = {key: where for key, where in _private_imports().items() if key not in ALLOWED}
    assert not shared, f"make these public where they live: {shared}"


def test_every_allowed_private_import_is_still_made() -> None:
    assert set(_private_imports()) >= ALLOWED, ALLOWED - set(_private_imports())
