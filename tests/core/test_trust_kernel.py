"""Every door to the host is in the trust kernel (``kneo/kernel/``), or listed here with why.

The package is parsed once (shared by every test here) and walked for every use of a door
*name*, each name resolved first to what it is: ``import x as y``, ``from x import y as z``,
a module or a door assigned to a new name (``run = sp.run``), ``getattr(os, "system")``,
``vars(os)["system"]``, ``sys.modules["os"]``, ``__import__("os")``, the builtins by any
spelling (``eval``, ``builtins.exec``, ``__builtins__["compile"]``; a parameter named
``compile`` hides the builtin in its own function only). A door is a name in :data:`DOORS`
(a module every name of which is one, as ``subprocess`` or ``socket``, but for its constants,
exception classes and type hints; or one name of a module, as ``os.system`` or
``httpx2.Client``), a door module imported and never used, a model SDK's client built without
the kernel's HTTP client, a module with doors looked into by a name chosen at run time
(``getattr(os, name)``, ``sys.modules[name]``), a door's own name called on an object the
walk cannot name (``mod.system(...)``), or an environment read that is not a ``KNEO_*``
literal. A door found outside the kernel fails unless :data:`EXCEPTIONS` names its module
with a reason; an exception that no longer matches anything fails too, so the list only
shrinks. The evasions an ordinary author would try (:data:`EVASIONS`) are planted alone and in
copies of real modules, and each must be caught; and every door of the kernel takes its grant
as a parameter and asks it itself.
"""

from __future__ import annotations

import ast
import builtins
import functools
import inspect
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import kneo.kernel
from tests import source_tree

PACKAGE = Path(__file__).resolve().parents[2] / "kneo"
KERNEL = "kneo/kernel/"

#: (module, door) -> why that module may open that door itself.
EXCEPTIONS: dict[tuple[str, str], str] = {
    ("kneo/settings.py", "environment"): "the one snapshot of the process environment; a "
    "secret a spec names leaves it only through kneo.kernel.secret (asking the run's grant), "
    "a variable the operator's configuration names through Settings.secret",
    ("kneo/spec/refs.py", "import"): "locates a module's source with import finders and "
    "parses it; no module code runs (static checks of refs)",
    ("kneo/lazy.py", "import"): "Kneo's own lazy public names: fixed modules of this package",
    ("kneo/cli/output.py", "import"): "the CLI's lazy subcommands: fixed modules of this package",
    ("kneo/deferred_imports.py", "import"): "one fixed dependency module (jsonschema's IRI "
    "checker), imported at first use instead of at jsonschema's import",
    ("kneo/controller/source.py", "process"): "GitPython runs git for the repository the "
    "operator configured (never a spec's); credentials from the controller's credential source",
    ("kneo/cli/bundle_cmd.py", "process"): "GitPython reads the commit of the signer's own "
    "checkout",
    ("kneo/cli/mcp_cmd.py", "network"): "binds the MCP server's own listening socket",
    ("kneo/service/mcp.py", "network"): "an in-process ASGI transport to this service's own "
    "app: nothing leaves the process",
}

#: Each module of which every name is a door (but :data:`HARMLESS`), and each door name of a
#: module that has others: ``qualified name -> door``. A name stands for itself and for every
#: name under it (``subprocess`` covers ``subprocess.run``).
DOORS: dict[str, str] = {
    **dict.fromkeys(
        (
            "subprocess",
            "pty",
            "multiprocessing",
            "concurrent.futures.ProcessPoolExecutor",
            "ctypes",
            "cffi",
            "webbrowser",
            "pexpect",
            "git",  # GitPython runs git
            "mcp.client.stdio",
            "asyncio.subprocess",
            "asyncio.create_subprocess_exec",
            "asyncio.create_subprocess_shell",
            "os.system",
            "os.popen",
            "os.fork",
            "os.forkpty",
            "os.posix_spawn",
            "os.posix_spawnp",
            "os.startfile",
        ),
        "process",
    ),
    **{f"os.{name}": "process" for name in dir(os) if name.startswith(("exec", "spawn"))},
    **dict.fromkeys(("os.environ", "os.environb", "os.getenv", "os.getenvb"), "environment"),
    **dict.fromkeys(("os.putenv", "os.unsetenv"), "environment"),
    **dict.fromkeys(
        (
            "importlib",
            "builtins.__import__",
            "imp",
            "runpy",
            "zipimport",
            "pkgutil.resolve_name",
            "pkgutil.get_loader",
        ),
        "import",
    ),
    **dict.fromkeys(
        (
            "builtins.eval",
            "builtins.exec",
            "builtins.compile",
            "builtins.breakpoint",
            "pickle",
            "_pickle",
            "cPickle",
            "marshal",
            "shelve",
            "dill",
            "cloudpickle",
            "code",
            "codeop",
            "types.CodeType",
            "types.FunctionType",
        ),
        "code",
    ),
    **dict.fromkeys(
        (
            "socket",
            "http.client",
            "urllib.request",
            "urllib3",
            "requests",
            "aiohttp",
            "websockets",
            "smtplib",
            "ftplib",
            "telnetlib",
            "poplib",
            "imaplib",
            "nntplib",
            "xmlrpc.client",
            "asyncio.open_connection",
            "asyncio.open_unix_connection",
            "ssl.wrap_socket",
        ),
        "network",
    ),
    **{
        f"{library}.{name}": "network"
        for library in ("httpx", "httpx2")
        for name in (
            "Client",
            "AsyncClient",
            "HTTPTransport",
            "AsyncHTTPTransport",
            *("get", "post", "put", "patch", "delete", "head", "options", "request", "stream"),
        )
    },
}

#: Names inside a door module that open nothing: constants, exceptions, types for hints.
HARMLESS = frozenset(
    {
        "subprocess.PIPE",
        "subprocess.DEVNULL",
        "subprocess.STDOUT",
        "subprocess.TimeoutExpired",
        "subprocess.CalledProcessError",
        "subprocess.SubprocessError",
        "subprocess.CompletedProcess",
        "socket.gethostname",
        "socket.gaierror",
        "socket.timeout",
        "socket.error",
        "importlib.metadata",
        "importlib.resources",
    }
)

#: A model SDK's client sends wherever its SDK does, unless it is given the kernel's client
#: (``http_client=``; Google's inside its ``http_options``).
_SDK_CLIENTS = {"OpenAI", "AzureOpenAI", "AsyncOpenAI", "Anthropic", "AsyncAnthropic"}
_GIVEN_CLIENT = {"http_client", "httpx_client"}
#: Functions whose string argument names an attribute to fetch.
_BY_NAME = {
    "builtins.getattr",
    "operator.attrgetter",
    "operator.methodcaller",
    "inspect.getattr_static",
}
_BUILTINS = frozenset(dir(builtins))
#: Names no other object in Kneo answers to: called on an object the walk cannot name (a
#: module handed over as an argument), each is taken for the door it is everywhere else.
_DISTINCT = {
    **{
        name: "process"
        for name in (
            *(n for n in dir(os) if n.startswith(("exec", "spawn"))),
            "system",
            "popen",
            "posix_spawn",
            "posix_spawnp",
            "forkpty",
            "Popen",
            "check_output",
            "check_call",
            "getoutput",
            "getstatusoutput",
            "create_subprocess_exec",
            "create_subprocess_shell",
        )
    },
    **dict.fromkeys(("import_module", "__import__", "run_path", "run_module"), "import"),
    **dict.fromkeys(("urlopen", "create_connection"), "network"),
}
_ENVIRONMENT = {k for k, door in DOORS.items() if door == "environment"}


@functools.cache
def door_of(name: str) -> str | None:
    """The door ``name`` (a qualified name) opens, ``None`` for none: an exception class
    (``smtplib.SMTPException``) opens nothing."""
    if name in HARMLESS or any(name.startswith(h + ".") for h in HARMLESS):
        return None
    if name.endswith(("Error", "Exception")):
        return None
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        found = DOORS.get(".".join(parts[:end]))
        if found is not None:
            return found
    return None


@functools.cache
def _has_doors(module: str) -> bool:
    """Whether any door lives under the qualified name ``module``."""
    return door_of(module) is not None or any(k.startswith(module + ".") for k in DOORS)


def _literal(node: ast.AST | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


_SCOPES = (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)


class _Names:
    """What each name of one module stands for: its imports and its assignments of a
    module or a door to a name, found anywhere in the module (any scope: a hiding place
    inside a function is still a hiding place), and which builtins each scope rebinds (a
    parameter named ``compile`` hides the builtin in its function only)."""

    def __init__(self, nodes: list[ast.AST], parents: dict[ast.AST, ast.AST]) -> None:
        self.bound: dict[str, str] = {"__builtins__": "builtins"}
        self.parents = parents
        self.scoped: dict[ast.AST | None, set[str]] = {}
        assigned: list[tuple[str, ast.AST]] = []
        for node in nodes:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        self.bound[alias.asname] = alias.name
                    else:
                        top = alias.name.split(".")[0]
                        self.bound[top] = top
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    self.bound[alias.asname or alias.name] = f"{node.module}.{alias.name}"
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                self._bind(node, node.name)
            elif isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
                self._bind(node, node.id)
            elif isinstance(node, ast.arg):
                self._bind(node, node.arg)
            elif isinstance(node, ast.ExceptHandler) and node.name:
                self._bind(node, node.name)
            if isinstance(node, ast.Assign | ast.AnnAssign | ast.NamedExpr):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Name) and node.value is not None:
                        assigned.append((target.id, node.value))
        for _ in range(3):  # an alias of an alias of an alias
            for target, value in assigned:
                resolved = self.qualified(value)
                if resolved is not None and _has_doors(resolved):
                    self.bound[target] = resolved

    def _scope(self, node: ast.AST) -> ast.AST | None:
        parent = self.parents.get(node)
        while parent is not None and not isinstance(parent, _SCOPES):
            parent = self.parents.get(parent)
        return parent

    def _bind(self, node: ast.AST, name: str) -> None:
        self.scoped.setdefault(self._scope(node), set()).add(name)

    def _shadowed(self, node: ast.Name) -> bool:
        scope = self._scope(node)
        while scope is not None:
            if node.id in self.scoped.get(scope, ()):
                return True
            scope = self._scope(scope)
        return False

    def qualified(self, node: ast.AST) -> str | None:
        """What ``node`` stands for, as a qualified name; ``None`` when not known."""
        if isinstance(node, ast.Name):
            if node.id in self.bound:
                return self.bound[node.id]
            if node.id in _BUILTINS and not self._shadowed(node):
                return f"builtins.{node.id}"
            return None
        if isinstance(node, ast.Attribute):
            base = self.qualified(node.value)
            if base is not None and node.attr == "__dict__":
                return base
            return None if base is None else f"{base}.{node.attr}"
        if isinstance(node, ast.Subscript):  # sys.modules["os"], vars(os)["system"]
            base, key = self.qualified(node.value), _literal(node.slice)
            return self._looked_up(base, key)
        if isinstance(node, ast.Call):
            return self._called(node)
        return None

    def _called(self, node: ast.Call) -> str | None:
        func = self.qualified(node.func)
        first = node.args[0] if node.args else None
        if func in ("builtins.getattr", "inspect.getattr_static") and len(node.args) >= 2:
            base, key = self.qualified(node.args[0]), _literal(node.args[1])
            return None if base is None or key is None else f"{base}.{key}"
        if func in ("builtins.__import__", "importlib.import_module"):
            return _literal(first)
        if func == "builtins.vars" and first is not None:
            return self.qualified(first)
        if isinstance(node.func, ast.Attribute) and node.func.attr == "get":
            return self._looked_up(self.qualified(node.func.value), _literal(first))
        return None

    @staticmethod
    def _looked_up(base: str | None, key: str | None) -> str | None:
        if base is None or key is None:
            return None
        return key if base == "sys.modules" else f"{base}.{key}"


def _kneo_literal(node: ast.AST | None) -> bool:
    return (_literal(node) or "").startswith("KNEO_")


def _environment_of_kneo(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """``os.environ["KNEO_X"]``, ``os.environ.get("KNEO_X")``, ``os.getenv("KNEO_X")``."""
    parent = parents.get(node)
    if isinstance(parent, ast.Subscript) and parent.value is node:
        return _kneo_literal(parent.slice)
    if isinstance(parent, ast.Call) and parent.func is node:
        return bool(parent.args) and _kneo_literal(parent.args[0])
    if isinstance(parent, ast.Attribute) and parent.attr == "get":
        call = parents.get(parent)
        return isinstance(call, ast.Call) and bool(call.args) and _kneo_literal(call.args[0])
    return False


def _given_client(call: ast.Call) -> bool:
    keywords = (k for node in ast.walk(call) if isinstance(node, ast.Call) for k in node.keywords)
    return any(k.arg in _GIVEN_CLIENT for k in keywords)


def _sdk_client(node: ast.AST, names: _Names) -> bool:
    """A model SDK's client built without the kernel's HTTP client."""
    if not isinstance(node, ast.Call):
        return False
    spelled = names.qualified(node.func) or ".".join(_spelled(node.func))
    last = spelled.split(".")[-2:]
    sdk = last[-1] in _SDK_CLIENTS or last == ["genai", "Client"]
    return sdk and not _given_client(node)


def _spelled(node: ast.AST) -> list[str]:
    """``a.b.c`` as written, whatever ``a`` is."""
    if isinstance(node, ast.Attribute):
        return [*_spelled(node.value), node.attr]
    return [node.id] if isinstance(node, ast.Name) else []


def _calls_get(node: ast.Call) -> bool:
    return isinstance(node.func, ast.Attribute) and node.func.attr == "get" and bool(node.args)


def _by_name(node: ast.AST, names: _Names) -> str | None:
    """A door fetched by a name the walk cannot read (``getattr(os, name)``,
    ``vars(os)[name]``, ``sys.modules[name]``) or by a name it can
    (``operator.attrgetter("system")``)."""
    base: str | None = None
    key: ast.AST | None = None
    if isinstance(node, ast.Subscript):
        base, key = names.qualified(node.value), node.slice
    elif isinstance(node, ast.Call) and names.qualified(node.func) in _BY_NAME:
        if names.qualified(node.func) in ("operator.attrgetter", "operator.methodcaller"):
            wanted = {_literal(a) for a in node.args}
            hits = [d for k, d in DOORS.items() if k.rsplit(".", 1)[-1] in wanted]
            return hits[0] if hits else None
        base = names.qualified(node.args[0]) if node.args else None
        key = node.args[1] if len(node.args) >= 2 else None
    elif isinstance(node, ast.Call) and _calls_get(node):  # sys.modules.get(name)
        base, key = names.qualified(node.func.value), node.args[0]  # type: ignore[attr-defined]
    if base is None or key is None or _literal(key) is not None:
        return None
    if base == "sys.modules":
        return "import"  # a module chosen at run time
    if _has_doors(base) and door_of(base) != "environment":
        return door_of(base) or "import"  # a door module's name chosen at run time
    return None


def _unnamed(node: ast.AST, names: _Names) -> str | None:
    """The door whose own name is called on an object the walk cannot name."""
    call = isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
    if call and names.qualified(node.func) is None:  # type: ignore[attr-defined]
        return _DISTINCT.get(node.func.attr)  # type: ignore[attr-defined]
    return None


def _annotations(nodes: list[ast.AST]) -> set[ast.AST]:
    """Every node inside a type annotation: a hint names a type, it opens nothing."""
    roots: list[ast.AST | None] = []
    for node in nodes:
        if isinstance(node, ast.arg):
            roots.append(node.annotation)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            roots.append(node.returns)
        elif isinstance(node, ast.AnnAssign):
            roots.append(node.annotation)
    return {inner for root in roots if root is not None for inner in ast.walk(root)}


def _within(node: ast.AST, parent: ast.AST | None, names: _Names) -> bool:
    """Whether ``node`` is the base of a larger name that is judged instead (``os`` in
    ``os.system``, ``os`` in ``getattr(os, "system")``, ``sys.modules`` in
    ``sys.modules["os"]``); the callee of a call is judged itself."""
    if not isinstance(parent, ast.Attribute | ast.Subscript | ast.Call):
        return False
    if isinstance(parent, ast.Call) and parent.func is node:
        return False
    return names.qualified(parent) is not None


def doors(tree: ast.Module) -> Iterator[tuple[str, int, str]]:
    """``(door, line, what)`` for every door the module opens itself."""
    nodes: list[ast.AST] = [tree]
    parents: dict[ast.AST, ast.AST] = {}
    for node in nodes:  # one walk: the list grows as it is read
        for child in ast.iter_child_nodes(node):
            parents[child] = node
            nodes.append(child)
    names, hints = _Names(nodes, parents), _annotations(nodes)
    loaded = {n.id for n in nodes if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    for node in nodes:
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield from _imported(node, line, loaded)
        elif node not in hints and isinstance(
            node, ast.Name | ast.Attribute | ast.Subscript | ast.Call
        ):
            found = _judged(node, names, parents)
            if found is not None:
                yield found[0], line, found[1]


def _judged(
    node: ast.AST, names: _Names, parents: dict[ast.AST, ast.AST]
) -> tuple[str, str] | None:
    """The door one name, subscript or call opens, and what it is, or ``None``."""
    by_name = _by_name(node, names)
    if by_name is not None:
        return by_name, f"a door fetched by name: {ast.unparse(node)}"
    name = names.qualified(node)
    unnamed = _unnamed(node, names) if name is None else None
    if unnamed is not None:
        return unnamed, f"{ast.unparse(node)}: a door's name on an unknown object"
    if _sdk_client(node, names):
        return "network", f"{ast.unparse(node)} without the kernel's client"
    door = door_of(name) if name is not None else None
    if door == "environment":
        if name in _ENVIRONMENT and not _environment_of_kneo(node, parents):
            return door, f"{ast.unparse(node)} ({name})"
    elif door is not None and not _within(node, parents.get(node), names):
        return door, f"{ast.unparse(node)} ({name})"
    return None


def _imported(
    node: ast.Import | ast.ImportFrom, line: int, loaded: set[str]
) -> Iterator[tuple[str, int, str]]:
    """An import by name (``import importlib``), a door module imported and never used (its
    uses are judged one by one: ``subprocess.PIPE`` is none), a door imported by its own
    name (``from os import system``), a star import of a module with doors."""
    if isinstance(node, ast.ImportFrom) and node.level:
        return  # Kneo's own modules
    for alias in node.names:
        if isinstance(node, ast.Import):
            door = door_of(alias.name)
            bound = alias.asname or alias.name.split(".")[0]
            if door == "import" or (door is not None and bound not in loaded):
                yield door, line, f"import {alias.name}"
        elif alias.name == "*":
            if _has_doors(node.module or ""):
                yield "import", line, f"from {node.module} import *"
        else:
            door = door_of(f"{node.module}.{alias.name}")
            if door is not None:
                yield door, line, f"from {node.module} import {alias.name}"


def module_doors(source: str) -> set[str]:
    return {door for door, _line, _what in doors(ast.parse(source))}


@functools.cache
def _trees() -> dict[str, ast.Module]:
    """Every module of the package but the kernel's and the migrations', parsed once."""
    trees = {}
    for path in source_tree.package_files():
        module = path.relative_to(PACKAGE.parent).as_posix()
        if not module.startswith(KERNEL) and "/migrations/" not in module:
            trees[module] = source_tree.parsed(path)
    return trees


@functools.cache
def _found() -> dict[tuple[str, str], list[str]]:
    found: dict[tuple[str, str], list[str]] = {}
    for module, tree in _trees().items():
        for door, line, what in doors(tree):
            found.setdefault((module, door), []).append(f"{module}:{line}: {what}")
    return found


def test_every_door_is_the_kernels_or_a_listed_exception() -> None:
    stray = [hit for key, hits in _found().items() if key not in EXCEPTIONS for hit in hits]
    assert stray == [], "open these doors through kneo.kernel:\n" + "\n".join(stray)


def test_every_exception_is_still_needed() -> None:
    unused = sorted(set(EXCEPTIONS) - set(_found()))
    assert unused == [], f"remove these from EXCEPTIONS: {unused}"


#: The evasions an ordinary author tries, each with the door it opens: aliases, ``from``
#: imports, names fetched by string, the builtins by another spelling, the import machinery
#: by another road, and the modules around the obvious ones.
EVASIONS: list[tuple[str, str]] = [
    # processes
    ("import subprocess as sp\n", "process"),
    ("import subprocess as sp\nsp.run(['ls'])\n", "process"),
    ("from subprocess import run as go\ngo(['ls'])\n", "process"),
    ("from subprocess import Popen\nPopen(['ls'])\n", "process"),
    ("import subprocess\nrunner = subprocess\nrunner.call(['ls'])\n", "process"),
    ("import subprocess\ndoors = [subprocess]\n", "process"),
    ("import subprocess\n(sp := subprocess).run(['ls'])\n", "process"),
    ("from os import system\nsystem('ls')\n", "process"),
    ("from os import system, environ\n", "process"),
    ("import os as o\no.system('ls')\n", "process"),
    ("import os\nshell = os.system\nshell('ls')\n", "process"),
    ("import os\ngetattr(os, 'system')('ls')\n", "process"),
    ("import os\nvars(os)['system']('ls')\n", "process"),
    ("import os\nos.__dict__['popen']('ls')\n", "process"),
    ("import os\nos.popen('ls')\n", "process"),
    ("import os\nos.execvp('ls', ['ls'])\n", "process"),
    ("import os\nos.spawnlp(os.P_WAIT, 'ls', 'ls')\n", "process"),
    ("def run(mod):\n    return mod.system('ls')\n", "process"),
    ("def run(mod):\n    return mod.Popen(['ls'])\n", "process"),
    ("import os\nos.posix_spawn('/bin/ls', ['ls'], {})\n", "process"),
    ("import os\nif os.fork() == 0: pass\n", "process"),
    ("import pty\npty.spawn('sh')\n", "process"),
    ("import asyncio\nasyncio.create_subprocess_shell('ls')\n", "process"),
    ("import asyncio\nasyncio.create_subprocess_exec('ls')\n", "process"),
    ("from asyncio import subprocess as asp\n", "process"),
    ("import multiprocessing\nmultiprocessing.Process(target=print).start()\n", "process"),
    ("from multiprocessing import Pool\n", "process"),
    ("from concurrent.futures import ProcessPoolExecutor\n", "process"),
    ("import ctypes\nctypes.CDLL(None).system(b'ls')\n", "process"),
    ("import sys\nsys.modules['os'].system('ls')\n", "process"),
    ("import sys\nsys.modules.get('subprocess').run(['ls'])\n", "process"),
    ("import operator, os\noperator.attrgetter('system')(os)('ls')\n", "process"),
    ("import webbrowser\nwebbrowser.open('http://x')\n", "process"),
    ("from mcp.client.stdio import stdio_client\n", "process"),
    ("import git\ngit.Repo('.')\n", "process"),
    # imports by name
    ("import importlib\n", "import"),
    ("import importlib as il\nil.import_module('os')\n", "import"),
    ("from importlib import import_module as im\nim('os')\n", "import"),
    ("import importlib.util\nimportlib.util.spec_from_file_location('m', 'p')\n", "import"),
    ("__import__('os')\n", "import"),
    ("__import__('os').system('ls')\n", "process"),
    ("import builtins\nbuiltins.__import__('os')\n", "import"),
    ("__builtins__['__import__']('os')\n", "import"),
    ("import sys\nsys.modules['importlib'].import_module('os')\n", "import"),
    ("import runpy\nrunpy.run_path('x.py')\n", "import"),
    ("from pkgutil import resolve_name\n", "import"),
    ("import os\ngetattr(os, name)('ls')\n", "import"),
    ("import os\nvars(os)[name]('ls')\n", "import"),
    ("import sys\nsys.modules[name].environ.copy()\n", "import"),
    ("import sys\nsys.modules.get(name)\n", "import"),
    ("def load(machinery):\n    return machinery.import_module('os')\n", "import"),
    ("from os import *\n", "import"),
    # code from data
    ("eval(text)\n", "code"),
    ("exec(text)\n", "code"),
    ("compile(text, 'x', 'exec')\n", "code"),
    ("import builtins as b\nb.eval(text)\n", "code"),
    ("getattr(__builtins__, 'exec')(text)\n", "code"),
    ("run = eval\nrun(text)\n", "code"),
    ("def elsewhere(exec=None):\n    pass\nexec(text)\n", "code"),
    ("class Hidden:\n    compile = None\ndef f():\n    compile(text, 'x', 'exec')\n", "code"),
    ("import pickle\npickle.loads(data)\n", "code"),
    ("from pickle import loads\nloads(data)\n", "code"),
    ("import marshal as m\nm.loads(data)\n", "code"),
    ("import shelve\nshelve.open('db')\n", "code"),
    ("import types\ntypes.FunctionType(code, {})\n", "code"),
    # the process environment
    ("import os\nos.environ['HOME']\n", "environment"),
    ("import os\nos.environ.get('OPENAI_API_KEY')\n", "environment"),
    ("import os\nos.getenv(name)\n", "environment"),
    ("import os\ndict(os.environ)\n", "environment"),
    ("from os import environ\nenviron['HOME']\n", "environment"),
    ("from os import environ as env\nenv.copy()\n", "environment"),
    ("import os as o\no.environ.get('OPENAI_API_KEY')\n", "environment"),
    ("import os\nsnapshot = os.environ\nsnapshot.copy()\n", "environment"),
    ("import os\ngetattr(os, 'environ')['HOME']\n", "environment"),
    ("import sys\nsys.modules['os'].environ.copy()\n", "environment"),
    ("import os\nos.putenv('X', 'y')\n", "environment"),
    ("import os\nos.environ['KNEO_' + name]\n", "environment"),
    # the network
    ("import socket as s\ns.socket()\n", "network"),
    ("import socket\nsocket.create_connection(('h', 1))\n", "network"),
    ("from socket import socket as sock\nsock()\n", "network"),
    ("import urllib.request\nurllib.request.urlopen('http://x')\n", "network"),
    ("from urllib import request\nrequest.urlopen('http://x')\n", "network"),
    ("from urllib.request import urlopen\n", "network"),
    ("import http.client as hc\nhc.HTTPSConnection('h')\n", "network"),
    ("from http.client import HTTPConnection\n", "network"),
    ("import ftplib\nftplib.FTP('h')\n", "network"),
    ("import telnetlib\ntelnetlib.Telnet('h')\n", "network"),
    ("import smtplib\nsmtplib.SMTP('h', 25)\n", "network"),
    ("import smtplib as mail\nmail.SMTP_SSL('h')\n", "network"),
    ("from httpx2 import Client\n", "network"),
    ("import httpx2\nhttpx2.Client()\n", "network"),
    ("import httpx2 as h\nh.AsyncClient(base_url='x')\n", "network"),
    ("import httpx2\nhttpx2.get('http://x')\n", "network"),
    ("import httpx\nhttpx.post('http://x')\n", "network"),
    ("import requests\nrequests.post('http://x')\n", "network"),
    ("import xmlrpc.client\nxmlrpc.client.ServerProxy('http://x')\n", "network"),
    ("import asyncio\nasyncio.open_connection('h', 1)\n", "network"),
    ("class C:\n    def m(self, lib):\n        return lib.urlopen('http://x')\n", "network"),
    ("from openai import OpenAI\nOpenAI(api_key='k')\n", "network"),
    ("from openai import OpenAI as AI\nAI(api_key='k')\n", "network"),
    ("from google import genai\ngenai.Client(api_key='k')\n", "network"),
    ("genai.Client(http_options=types.HttpOptions(base_url='x'))\n", "network"),
]


@pytest.mark.parametrize(("source", "door"), EVASIONS)
def test_each_evasion_is_caught(source: str, door: str) -> None:
    assert door in module_doors(source)


def _planted(module: str, evasion: str, *, in_function: bool) -> str:
    """The source of ``module`` (a copy of a real one) with ``evasion`` at its end, or in
    a function of its own at its end."""
    source = (PACKAGE.parent / module).read_text()
    if in_function:
        body = "".join(f"    {line}\n" for line in evasion.splitlines())
        return f"{source}\n\ndef _planted() -> None:\n{body}"
    return f"{source}\n{evasion}"


@pytest.mark.parametrize("module", ["kneo/engine/budgets.py", "kneo/platform/inspect.py"])
def test_each_evasion_is_caught_planted_in_a_real_module(module: str) -> None:
    """The copy alone opens no door, and each evasion planted in it, at the top level or
    inside a function of its own, is found."""
    assert not module_doors((PACKAGE.parent / module).read_text())
    missed = [
        (source, door, in_function)
        for source, door in EVASIONS
        for in_function in (False, True)
        if door not in module_doors(_planted(module, source, in_function=in_function))
    ]
    assert missed == []


def test_the_issues_three_plants_in_budgets_are_caught() -> None:
    """``import subprocess as sp``, ``from os import system, environ`` and ``from httpx2
    import Client`` in ``engine/budgets.py`` passed the name match; each is a door here."""
    plants = ["import subprocess as sp\n", "from os import system, environ\n"]
    plants.append("from httpx2 import Client\n")
    found = {
        what
        for plant in plants
        for _door, _line, what in doors(
            ast.parse(_planted("kneo/engine/budgets.py", plant, in_function=False))
        )
    }
    assert found == {
        "import subprocess",
        "from os import system",
        "from os import environ",
        "from httpx2 import Client",
    }


@pytest.mark.parametrize(
    "source",
    [
        "import os\nos.environ.get('KNEO_SERV_X')\n",
        "import os\nos.environ['KNEO_SERV_X']\n",
        "import os\nos.getenv('KNEO_SERV_X')\n",
        "import subprocess\nsubprocess.PIPE\n",
        "import subprocess\ntry:\n    pass\nexcept subprocess.TimeoutExpired:\n    pass\n",
        "import subprocess\ndef f() -> subprocess.Popen[str]: ...\n",
        "import socket\nsocket.gethostname()\n",
        "import smtplib\ntry:\n    pass\nexcept smtplib.SMTPException:\n    pass\n",
        "from importlib.metadata import version\n",
        "import importlib.metadata\nimportlib.metadata.version('kneo')\n",
        "import os\nos.path.join('a', 'b')\nos.getpid()\n",
        "import re\nre.compile('x')\n",
        "def compile(x): ...\ncompile(1)\n",
        "def f(compile):\n    return compile(1)\n",
        "eval = len\neval('x')\n",
        "self.compile(spec)\n",
        "getattr(obj, name)\n",
        "import sys\nsys.modules.get('kneo')\n",
        "import json\njson.loads(text)\n",
        "import asyncio\nasyncio.run(main())\n",
        "from openai import OpenAI\nOpenAI(api_key='k', http_client=client)\n",
        "genai.Client(http_options=types.HttpOptions(httpx_client=client))\n",
        "from . import subprocess\n",
    ],
)
def test_what_is_no_door(source: str) -> None:
    assert list(doors(ast.parse(source))) == []


#: Each door of the kernel, and what it asks of the grant it takes (the file door's grant is
#: the project root: it is asked while the project config the grant is made of is read; an
#: operator's ``module:name`` reference, ``resolve_attribute``, is the operator's own).
GRANTED_DOORS = {
    "resolve_callable": ("CallableGrant", "function"),
    "secret": ("SecretGrant", "secret"),
    "run_process": ("ProcessGrant", "process"),
    "start_process": ("ProcessGrant", "process"),
    "stdio_server": ("ProcessGrant", "process"),
    "http_client": ("NetworkGrant", "destination"),
    "async_http_client": ("NetworkGrant", "destination"),
    "smtp_connection": ("NetworkGrant", "destination"),
}


#: Doors that may be called without a grant, and who may.
UNGRANTED_CALLERS = {
    "resolve_callable": "code the caller registered in-process itself (an SDK workflow)",
}


@pytest.mark.parametrize(("door", "grant"), GRANTED_DOORS.items())
def test_every_door_takes_the_grant_as_a_parameter_and_asks_it(
    door: str, grant: tuple[str, str]
) -> None:
    """The door's ``grant`` parameter is typed with the kernel's protocol, and the door's
    own body (not its callers) calls the protocol's method."""
    protocol, method = grant
    function = getattr(kneo.kernel, door)
    annotation = inspect.signature(function).parameters["grant"].annotation
    assert annotation == (f"{protocol} | None" if door in UNGRANTED_CALLERS else protocol)
    assert callable(getattr(getattr(kneo.kernel, protocol), method))
    asked = {
        node.func.attr
        for node in ast.walk(ast.parse(inspect.getsource(inspect.getmodule(function))))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "grant"
    }
    assert method in asked
