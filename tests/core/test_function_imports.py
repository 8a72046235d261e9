"""A module's header says what it depends on (issue 57, item 2): imports between Kneo modules
inside functions stay at or below :data:`TARGET`.

An import stays in a function only for a real import cycle (a comment at the import says so)
or a measured start-up cost (the module docstring gives the figure). The counting is
``scripts/function_imports.py``'s, which prints the figures by package.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]

#: At most this many function-level imports between Kneo modules in the package.
TARGET = 100


def _script() -> ModuleType:
    path = ROOT / "scripts" / "function_imports.py"
    spec = importlib.util.spec_from_file_location("function_imports", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["function_imports"] = module
    spec.loader.exec_module(module)
    return module


function_imports = _script()


def test_function_level_imports_between_kneo_modules_stay_at_or_below_the_target() -> None:
    _, internal = function_imports.count(ROOT)
    by_package = dict(internal.most_common())
    assert sum(internal.values()) <= TARGET, f"move imports to the module header: {by_package}"


def test_the_count_sees_nested_functions_once_and_skips_module_and_class_level() -> None:
    source = (
        "import kneo.a\n"
        "class C:\n"
        "    from kneo import b\n"
        "    def m(self):\n"
        "        from . import c\n"
        "        import json\n"
        "        def inner():\n"
        "            from kneo.d import e\n"
        "        class Local:\n"
        "            from kneo import f\n"
    )
    found = function_imports.function_imports(ast.parse(source))
    assert [node.lineno for node in found] == [5, 6, 8]
    assert [function_imports.is_internal(node) for node in found] == [True, False, True]


def test_a_package_is_named_by_its_first_two_parts(tmp_path: Path) -> None:
    assert function_imports.package_of(tmp_path / "kneo/cli/main.py", tmp_path) == "kneo.cli"
    assert function_imports.package_of(tmp_path / "kneo/service/routes/runs.py", tmp_path) == (
        "kneo.service"
    )
    assert function_imports.package_of(tmp_path / "kneo/settings.py", tmp_path) == "kneo"
