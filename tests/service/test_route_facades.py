"""The HTTP routes ask the platform, never the store (issue 35, item 4).

A route that reads ``manager.store`` ties the wire to the storage schema: the store could
not change behind the platform without the routes changing too. Every route goes through a
:class:`~kneo.platform.manager.PlatformManager` method instead; this walks the routes' syntax
trees so a new ``.store`` fails here, not in review.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROUTES = Path(__file__).resolve().parents[2] / "kneo" / "service" / "routes"


def store_uses(source: str, filename: str = "<route>") -> list[str]:
    """Every way ``source`` reaches the store: an attribute ``store`` (``manager.store``),
    ``getattr(x, "store")``, the ``store_dep`` dependency, or an import of ``kneo.store``."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source, filename)):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Attribute) and node.attr == "store":
            found.append(f"{filename}:{line}: .store")
        elif isinstance(node, ast.Name) and node.id == "store_dep":
            found.append(f"{filename}:{line}: store_dep")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "getattr"
            and any(isinstance(a, ast.Constant) and a.value == "store" for a in node.args)
        ):
            found.append(f"{filename}:{line}: getattr(..., 'store')")
        elif isinstance(node, ast.Import):
            found += [f"{filename}:{line}: import {a.name}" for a in node.names if _store(a.name)]
        elif isinstance(node, ast.ImportFrom) and _store(node.module or ""):
            found.append(f"{filename}:{line}: from {node.module} import ...")
        elif isinstance(node, ast.ImportFrom) and any(a.name == "store_dep" for a in node.names):
            found.append(f"{filename}:{line}: import store_dep")
    return found


def _store(module: str) -> bool:
    return module == "kneo.store" or module.startswith("kneo.store.")


def test_no_route_touches_the_store() -> None:
    paths = sorted(ROUTES.glob("*.py"))
    assert len(paths) >= 8  # every route module is walked (audit, controller, human, ...)
    found = [use for p in paths for use in store_uses(p.read_text(), p.name)]
    assert found == [], "ask a PlatformManager method instead:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "source",
    [
        "def f(manager):\n    return manager.store.runs.get_run('r')\n",
        "def f(caller):\n    caller.manager.store.audit.list_audit()\n",
        "def f(m):\n    return getattr(m, 'store')\n",
        "from kneo.service.dependencies import store_dep\n",
        "from kneo.store import Store\n",
        "import kneo.store.base\n",
        "if TYPE_CHECKING:\n    from kneo.store.records import RunRecord\n",
    ],
)
def test_the_walk_finds_each_way_to_the_store(source: str) -> None:
    """The check above would pass vacuously if the walk missed a form."""
    assert store_uses(source) != []


def test_a_route_that_asks_the_manager_passes() -> None:
    source = "def f(manager):\n    stored = manager.stored_policy('prod')\n    return stored\n"
    assert store_uses(source) == []
