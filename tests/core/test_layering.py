"""The pure core never imports storage, web or CLI frameworks (ARCHITECTURE: imports point down)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests import source_tree

FORBIDDEN = (
    "sqlalchemy",
    "fastapi",
    "starlette",
    "typer",
    "httpx2",
    "httpx",
    "openai",
    "git",
    "mcp",
)

PURE_PACKAGES = ["kneo.spec", "kneo.bundle", "kneo.policy", "kneo.engine", "kneo.tools"]

_PROBE = """
import importlib, json, pkgutil, sys
root = sys.argv[1]
pkg = importlib.import_module(root)
names = [root]
if hasattr(pkg, "__path__"):
    for info in pkgutil.walk_packages(pkg.__path__, root + "."):
        if ".providers.openai" in info.name:
            continue  # the OpenAI provider imports its SDK lazily inside methods only
        names.append(info.name)
for name in names:
    importlib.import_module(name)
print(json.dumps(sorted(m.split(".")[0] for m in sys.modules)))
"""


@pytest.mark.parametrize("package", PURE_PACKAGES)
def test_pure_package_imports_no_frameworks(package: str) -> None:
    """Importing every module of a pure package loads no storage/web/CLI framework."""
    try:
        __import__(package)
    except ImportError:
        pytest.skip(f"{package} does not exist yet")
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, package], capture_output=True, text=True, check=True
    )
    loaded = set(json.loads(out.stdout))
    assert not loaded & set(FORBIDDEN), f"{package} pulls in {sorted(loaded & set(FORBIDDEN))}"


# The layer order of docs/design.md ("Layers"), lowest first. A module may import its own
# layer and any layer below; a longest-prefix match assigns a module to its layer. ``kneo``
# itself is the public facade (lazy exports of every layer) and sits above them all.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "base",
        (
            "kneo.errors",
            "kneo.lifecycle",
            "kneo.settings",
            "kneo.setting_groups",
            "kneo.clock",
            "kneo.ids",
            "kneo.redaction",
            "kneo.documents",
            "kneo.destinations",
            "kneo.logs",
            "kneo.names",
            "kneo.tools",
            "kneo.runtimes",
            "kneo.lazy",
            "kneo.startup",
            "kneo.deferred_imports",
            "kneo.jsontext",
            "kneo.periodic",
            "kneo.lrucache",
            "kneo.kernel",
            "kneo.version",
            "kneo._version",
            "kneo.metrics",
            "kneo.tracing",
            "kneo.notification_events",
            "kneo.people",
            "kneo.projects",
            "kneo.usage",
        ),
    ),
    ("contract", ("kneo.spec",)),
    ("trust", ("kneo.bundle", "kneo.policy")),
    ("execution", ("kneo.engine",)),
    ("adapters", ("kneo.mcp", "kneo.remote", "kneo.bridges")),
    ("persistence", ("kneo.store",)),
    ("reconcile", ("kneo.controller",)),
    ("application", ("kneo.platform", "kneo.evals")),
    (
        "edges",
        (
            "kneo.service",
            "kneo.console",
            "kneo.worker",
            "kneo.cli",
            "kneo.envcheck",
        ),
    ),
]
PACKAGE = Path(__file__).resolve().parents[2] / "kneo"


def layer_of(module: str) -> int | None:
    """The index of ``module``'s layer (the longest matching prefix), or None."""
    best: tuple[int, int] | None = None  # (prefix length, layer)
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            matches = module == prefix or module.startswith(prefix + ".")
            if matches and (best is None or len(prefix) > best[0]):
                best = (len(prefix), index)
    return None if best is None else best[1]


def kneo_imports(path: Path) -> list[tuple[int, str]]:
    """Every import of a ``kneo`` module in ``path``: module level, in functions and under
    ``TYPE_CHECKING`` alike (a lazy import is still a dependency)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(source_tree.parsed(path)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module == "kneo":  # from kneo import x
            found += [(node.lineno, f"kneo.{a.name}") for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return [(line, name) for line, name in found if name.startswith("kneo.")]


def package_modules() -> dict[str, Path]:
    modules = {}
    for path in source_tree.package_files():
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


def test_every_module_has_a_layer() -> None:
    unplaced = [m for m in package_modules() if m != "kneo" and layer_of(m) is None]
    assert unplaced == [], "add these to LAYERS (and docs/design.md)"


def test_imports_point_down_the_layers() -> None:
    upward = []
    for module, path in package_modules().items():
        own = layer_of(module)
        if own is None:
            continue
        for line, target in kneo_imports(path):
            theirs = layer_of(target)
            if theirs is not None and theirs > own:
                upward.append(
                    f"{path.relative_to(PACKAGE.parent)}:{line}: {LAYERS[own][0]} "
                    f"{module} imports {LAYERS[theirs][0]} {target}"
                )
    assert upward == []


def test_the_walk_sees_imports_inside_functions() -> None:
    """The check above would pass vacuously if the walk missed lazy imports."""
    imports = dict(
        (name, line) for line, name in kneo_imports(PACKAGE / "platform" / "reconcile.py")
    )
    assert "kneo.controller.controller" in imports  # imported inside controller_view()
    assert layer_of("kneo.service.mcp") > layer_of("kneo.platform")  # type: ignore[operator]
    assert layer_of("kneo.mcp.client") < layer_of("kneo.platform")  # type: ignore[operator]


def test_platform_collaborators_do_not_import_the_manager() -> None:
    """``PlatformManager`` composes the platform's collaborators; they depend on each other,
    never on it (only the factory builds one, and the package's lazy exports name it)."""
    composers = {"kneo.platform", "kneo.platform.manager", "kneo.platform.factory"}
    found = [
        f"{module}:{line}"
        for module, path in package_modules().items()
        if module.startswith("kneo.platform.") and module not in composers
        for line, target in kneo_imports(path)
        if target == "kneo.platform.manager"
    ]
    assert found == []


def test_the_platform_reaches_into_no_other_objects_private_members() -> None:
    """In ``kneo.platform`` an underscore attribute is read only on ``self`` or ``cls``: a
    collaborator uses another through its public methods (``tx._insert`` and the like would
    couple a module to another's internals)."""
    found = []
    for module, path in package_modules().items():
        if not module.startswith("kneo.platform"):
            continue
        for node in ast.walk(source_tree.parsed(path)):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
            ):
                found.append(f"{module}:{node.lineno}: .{node.attr}")
    assert found == []
