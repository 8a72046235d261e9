"""``module:function`` references: find them and check them without running them.

Validation must not run user code, so :func:`inspect_ref` locates the module's source with
import finders (no module body executes), parses it with :mod:`ast`, and answers three
questions: is ``function`` a name of the module, is it a *function defined there* (a
top-level ``def``, or a ``def`` in a top-level class: the only things a ref may name, as
:func:`kneo.kernel.resolve_callable` enforces when it runs), and does the module directly
import a primitive that escapes the sandbox (``os``, ``subprocess``, ``shutil``, ``socket``,
``importlib``, ``builtins``, or ``__import__``)? Only the kernel imports
(:func:`load_callable` asks it).
"""

from __future__ import annotations

import ast
import importlib.machinery
import importlib.util
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from kneo.kernel import UNSAFE_MODULES, resolve_callable, split_ref
from kneo.kernel.code import PARSE_LOCK, collect_code, load_code

_ROOT_MARKERS = (".kneo", "pyproject.toml", ".git")


_INVALIDATING = threading.Lock()


def refresh_import_caches() -> None:
    """Forget what the import system cached about directories, so a long-lived process sees
    modules added since; one thread at a time, since two concurrent calls delete the same
    ``sys.path_importer_cache`` entries (KeyError in 3.11)."""
    with _INVALIDATING:
        importlib.invalidate_caches()


@dataclass(frozen=True)
class RefInfo:
    """What static inspection learned about one ``module:function`` reference."""

    ref: str
    module: str
    attribute: str
    origin: str | None
    found: bool
    defined: bool
    unsafe_imports: tuple[str, ...] = ()
    problem: str | None = None
    #: why the name, though defined, is not a function a ref may name (an import, an
    #: assignment, a class, a path through another object); ``None`` when it is one
    not_a_function: str | None = None


def is_ref(value: str) -> bool:
    return split_ref(value) is not None


def import_roots(base_dir: Path | None) -> list[Path]:
    """Directories a spec's refs may import from: the spec's directory and its parents up to
    the project root (the first with ``.kneo``, ``pyproject.toml`` or ``.git``), then cwd.

    ``examples/x.yaml`` naming ``examples.app_functions:f`` thus works from any directory.
    """
    roots: list[Path] = []
    if base_dir is not None:
        here = base_dir.resolve()
        for directory in (here, *here.parents):
            roots.append(directory)
            if any((directory / marker).exists() for marker in _ROOT_MARKERS):
                break
    cwd = Path.cwd().resolve()
    if cwd not in roots:
        roots.append(cwd)
    return roots


def find_origin(module: str, roots: Sequence[Path]) -> tuple[str | None, str | None]:
    """The source file of ``module`` without executing it (nor its parent packages).

    Returns ``(origin, problem)``; ``origin`` is None when the module cannot be found.
    """
    parts = module.split(".")
    spec: importlib.machinery.ModuleSpec | None = None
    for i in range(len(parts)):
        name = ".".join(parts[: i + 1])
        if i == 0:
            spec = importlib.machinery.PathFinder.find_spec(name, [str(r) for r in roots])
            if spec is None:
                try:
                    spec = importlib.util.find_spec(name)  # top level: runs no module code
                except (ImportError, ValueError):
                    spec = None
        else:
            locations = list(spec.submodule_search_locations or []) if spec else []
            if not locations:
                return None, f"'{parts[i - 1]}' is not a package"
            try:
                spec = importlib.machinery.PathFinder.find_spec(name, locations)
            except KeyError:
                # A namespace package (no __init__.py) whose parent was never imported:
                # importlib looks the parent up in sys.modules. Its directories are its path.
                found = [
                    str(Path(loc, parts[i])) for loc in locations if Path(loc, parts[i]).is_dir()
                ]
                spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
                spec.submodule_search_locations = found
            if spec is None:
                for finder in sys.meta_path:
                    find = getattr(finder, "find_spec", None)
                    if find is None:
                        continue
                    try:
                        spec = find(name, locations)
                    except (ImportError, ValueError, TypeError):
                        spec = None
                    if spec is not None:
                        break
        if spec is None:
            return None, f"module '{name}' not found"
    if spec is None or spec.origin in (None, "built-in", "frozen"):
        return None, f"module '{module}' has no Python source to inspect"
    return spec.origin, None


@dataclass(frozen=True)
class _Module:
    """What one source file defines at the top, by kind, and what it imports unsafely."""

    names: frozenset[str]
    functions: frozenset[str]
    #: ``Class.method`` for every ``def`` directly inside a top-level class
    methods: frozenset[str]
    classes: frozenset[str]
    unsafe: tuple[str, ...]
    problem: str | None = None


@lru_cache(maxsize=256)
def _analyse(origin: str, mtime_ns: int) -> _Module:
    """Top-level names by kind and unsafe imports of one source file (cached per mtime)."""
    try:
        source = Path(origin).read_text(encoding="utf-8")
        with PARSE_LOCK:  # the kernel's: one lock for every parse (cpython#106905)
            tree = ast.parse(source, filename=origin)
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError) as exc:
        none: frozenset[str] = frozenset()
        return _Module(none, none, none, none, (), f"cannot parse {origin}: {exc}")
    names: set[str] = set()
    functions: set[str] = set()
    methods: set[str] = set()
    classes: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            functions.add(node.name)
        elif isinstance(node, ast.ClassDef):
            classes.add(node.name)
            methods.update(
                f"{node.name}.{item.name}"
                for item in node.body
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
            )
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    unsafe: list[str] = []
    for any_node in ast.walk(tree):
        if isinstance(any_node, ast.Import):
            unsafe.extend(a.name for a in any_node.names if a.name.split(".")[0] in UNSAFE_MODULES)
        elif isinstance(any_node, ast.ImportFrom) and any_node.module and any_node.level == 0:
            if any_node.module.split(".")[0] in UNSAFE_MODULES:
                unsafe.append(any_node.module)
        elif (
            isinstance(any_node, ast.Call)
            and isinstance(any_node.func, ast.Name)
            and any_node.func.id in {"__import__", "exec", "eval"}
        ):
            unsafe.append(f"{any_node.func.id}()")
    names |= functions | classes
    return _Module(
        frozenset(names),
        frozenset(functions),
        frozenset(methods),
        frozenset(classes),
        tuple(dict.fromkeys(unsafe)),
    )


def _not_a_function(found: _Module, attr: str) -> str | None:
    """Why ``attr`` is not a function ``found`` defines (``None``: it is one)."""
    parts = attr.split(".")
    if len(parts) == 1:
        if attr in found.functions:
            return None
        return (
            "is a class, not a function"
            if attr in found.classes
            else ("is bound by an import or an assignment, not defined by a def")
        )
    if len(parts) == 2 and attr in found.methods:
        return None
    if parts[0] in found.classes and len(parts) == 2:
        return f"is not a method defined in class {parts[0]!r}"
    return f"reaches through {parts[0]!r}, which is not a class defined there"


def inspect_ref(ref: str, roots: Sequence[Path]) -> RefInfo:
    """Statically inspect ``module:function`` (no code runs)."""
    parsed = split_ref(ref)
    if parsed is None:
        return RefInfo(ref, "", "", None, False, False, problem="expected 'module:function'")
    module, attr = parsed
    if module.split(".")[0] in UNSAFE_MODULES:  # e.g. ``os:system`` names the primitive itself
        return RefInfo(
            ref, module, attr, None, True, True, (module,), not_a_function="is a host primitive"
        )
    origin, problem = find_origin(module, roots)
    if origin is None:
        return RefInfo(ref, module, attr, None, False, False, problem=problem)
    try:
        mtime = Path(origin).stat().st_mtime_ns
    except OSError:
        mtime = 0
    found = _analyse(origin, mtime)
    top = attr.split(".")[0]
    defined = found.problem is None and top in found.names
    return RefInfo(
        ref,
        module,
        attr,
        origin,
        True,
        defined,
        found.unsafe,
        found.problem or (None if defined else f"'{attr}' is not defined in module '{module}'"),
        _not_a_function(found, attr) if defined else None,
    )


def load_callable(ref: str, roots: Iterable[Path] = ()) -> Callable[..., Any]:
    """The function ``module:function`` names, for execution (through the trust kernel:
    :func:`kneo.kernel.resolve_callable`, which refuses anything but a function defined in
    its module). A module found in ``roots`` (such as ``examples.app_functions``) is loaded
    from its file, with the project modules it imports, never by its name."""
    parsed = split_ref(ref)
    code = collect_code([parsed[0]], list(roots))[0] if parsed else None
    return resolve_callable(ref, code=load_code(code) if code else None)


def modules_of(refs: Iterable[str]) -> list[str]:
    """The modules ``refs`` name, in order, once each."""
    return list(dict.fromkeys(p[0] for p in map(split_ref, refs) if p is not None))


def project_root(roots: Sequence[Path]) -> Path | None:
    """The project root among a spec's :func:`import_roots`: the first with ``.kneo``,
    ``pyproject.toml`` or ``.git``, else the spec's own directory."""
    for root in roots:
        if any((root / marker).exists() for marker in _ROOT_MARKERS):
            return root
    return roots[0] if roots else None
