"""Every door to the host is in the trust kernel (``kneo/kernel/``), or listed here with why.

The package's syntax trees are walked for each kind of door: an import by name
(``importlib``, ``__import__``), a read of the process environment (``os.environ``,
``os.getenv``) that is not a ``KNEO_*`` literal, a process start (``subprocess``, ``os.system``
and its kin, ``asyncio``'s subprocesses, the MCP SDK's stdio client, GitPython), and an HTTP
client built (``httpx2``/``httpx`` clients, a model SDK's client, ``urllib``, raw sockets).
A door found outside the kernel fails unless :data:`EXCEPTIONS` names its module with a
reason; an exception that no longer matches anything fails too, so the list only shrinks.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "kneo"
KERNEL = "kneo/kernel/"

#: (module, door) -> why that module may open that door itself.
EXCEPTIONS: dict[tuple[str, str], str] = {
    ("kneo/settings.py", "environment"): "the one snapshot of the process environment; a "
    "non-KNEO value leaves it only through kneo.kernel.secret",
    ("kneo/spec/refs.py", "import"): "locates a module's source with import finders and "
    "parses it; no module code runs (static checks of refs)",
    ("kneo/lazy.py", "import"): "Kneo's own lazy public names: fixed modules of this package",
    ("kneo/cli/output.py", "import"): "the CLI's lazy subcommands: fixed modules of this package",
    ("kneo/controller/source.py", "process"): "GitPython runs git for the repository the "
    "operator configured (never a spec's); credentials from the controller's credential source",
    ("kneo/cli/bundle_cmd.py", "process"): "GitPython reads the commit of the signer's own "
    "checkout",
    ("kneo/mcp/client.py", "process"): "the MCP SDK starts a declared server's command, once "
    "HostAccess.server resolved the import",
    ("kneo/cli/mcp_cmd.py", "network"): "binds the MCP server's own listening socket",
    ("kneo/service/mcp.py", "network"): "an in-process ASGI transport to this service's own "
    "app: nothing leaves the process",
}

_PROCESS_CALLS = (
    {
        ("subprocess", name)
        for name in ("run", "Popen", "call", "check_call", "check_output", "getoutput")
    }
    | {
        ("os", name)
        for name in (
            "system",
            "popen",
            "execv",
            "execve",
            "execvp",
            "execl",
            "spawnv",
            "posix_spawn",
            "fork",
        )
    }
    | {("asyncio", "create_subprocess_exec"), ("asyncio", "create_subprocess_shell")}
)
_HTTP_MODULES = {"httpx2", "httpx"}
_HTTP_CLASSES = {"Client", "AsyncClient", "HTTPTransport", "AsyncHTTPTransport"}
_HTTP_FUNCTIONS = {"get", "post", "put", "patch", "delete", "head", "options", "request", "stream"}
_SDK_CLIENTS = {"OpenAI", "AzureOpenAI", "AsyncOpenAI", "Anthropic", "AsyncAnthropic"}
_NETWORK_CALLS = {
    ("socket", "socket"),
    ("socket", "create_connection"),
    ("request", "urlopen"),
    ("client", "HTTPConnection"),
    ("client", "HTTPSConnection"),
    ("smtplib", "SMTP"),
    ("smtplib", "SMTP_SSL"),
}
#: An SDK's client given the kernel's HTTP client (``http_client=``; Google's inside its
#: ``http_options``) sends through nothing else.
_GIVEN_CLIENT = {"http_client", "httpx_client"}


def _dotted(node: ast.AST) -> tuple[str, ...]:
    """``a.b.c`` as ``("a", "b", "c")``; ``()`` for anything else."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return (node.id, *reversed(parts))
    return ()


def _literal_kneo(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and str(node.value).startswith("KNEO_")


def _env_read(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """``os.environ``/``os.getenv`` used for anything but a ``KNEO_*`` literal."""
    if _dotted(node) not in (("os", "environ"), ("os", "environb"), ("os", "getenv")):
        return False
    parent = parents.get(node)
    if isinstance(parent, ast.Subscript) and _literal_kneo(parent.slice):
        return False
    if isinstance(parent, ast.Call) and parent.args and _literal_kneo(parent.args[0]):
        return False  # os.getenv("KNEO_X")
    if isinstance(parent, ast.Attribute) and parent.attr == "get":
        call = parents.get(parent)
        return not (isinstance(call, ast.Call) and call.args and _literal_kneo(call.args[0]))
    return True


def _network_call(name: tuple[str, ...]) -> bool:
    """An HTTP client, a request function of an HTTP library, a raw socket."""
    if len(name) >= 2 and name[0] in _HTTP_MODULES:
        return name[-1] in _HTTP_CLASSES or name[-1] in _HTTP_FUNCTIONS
    return name[-2:] in _NETWORK_CALLS


def _given_client(call: ast.Call) -> bool:
    keywords = (k for node in ast.walk(call) if isinstance(node, ast.Call) for k in node.keywords)
    return any(k.arg in _GIVEN_CLIENT for k in keywords)


def _sdk_client(name: tuple[str, ...]) -> bool:
    return bool(name) and (name[-1] in _SDK_CLIENTS or name[-2:] == ("genai", "Client"))


def _doors(tree: ast.Module) -> Iterator[tuple[str, int, str]]:
    """``(door, line, what)`` for every door the module opens itself."""
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                by_name = alias.name == "importlib" or alias.name.startswith("importlib.")
                metadata = alias.name.startswith(("importlib.metadata", "importlib.resources"))
                if by_name and not metadata:
                    yield "import", node.lineno, f"import {alias.name}"
                if alias.name == "git":
                    yield "process", node.lineno, "import git (GitPython runs git)"
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module in ("importlib", "importlib.util", "importlib.machinery"):
                yield "import", node.lineno, f"from {node.module} import ..."
            if node.module == "git" or node.module.startswith("git."):
                yield "process", node.lineno, f"from {node.module} import ..."
            if node.module == "subprocess":
                yield "process", node.lineno, "from subprocess import ..."
            if node.module.startswith("mcp.client.stdio"):
                yield "process", node.lineno, "the MCP SDK's stdio client"
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name == ("__import__",):
                yield "import", node.lineno, "__import__()"
            elif name[-2:] in _PROCESS_CALLS:
                yield "process", node.lineno, ".".join(name)
            elif _network_call(name):
                yield "network", node.lineno, ".".join(name)
            elif _sdk_client(name) and not _given_client(node):
                yield "network", node.lineno, f"{name[-1]}() without the kernel's client"
        elif isinstance(node, ast.Attribute | ast.Name) and _env_read(node, parents):
            yield "environment", node.lineno, ".".join(_dotted(node))


@functools.cache
def _found() -> dict[tuple[str, str], list[str]]:
    found: dict[tuple[str, str], list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = path.relative_to(PACKAGE.parent).as_posix()
        if module.startswith(KERNEL) or "/migrations/" in module:
            continue
        for door, line, what in _doors(ast.parse(path.read_text(), filename=str(path))):
            found.setdefault((module, door), []).append(f"{module}:{line}: {what}")
    return found


def test_every_door_is_the_kernels_or_a_listed_exception() -> None:
    stray = [hit for key, hits in _found().items() if key not in EXCEPTIONS for hit in hits]
    assert stray == [], "open these doors through kneo.kernel:\n" + "\n".join(stray)


def test_every_exception_is_still_needed() -> None:
    unused = sorted(set(EXCEPTIONS) - set(_found()))
    assert unused == [], f"remove these from EXCEPTIONS: {unused}"


@pytest.mark.parametrize(
    ("source", "door"),
    [
        ("import importlib\n", "import"),
        ("from importlib import import_module\n", "import"),
        ("__import__('os')\n", "import"),
        ("import os\nos.environ['HOME']\n", "environment"),
        ("import os\nos.environ.get('OPENAI_API_KEY')\n", "environment"),
        ("import os\nos.getenv(name)\n", "environment"),
        ("import os\ndict(os.environ)\n", "environment"),
        ("import subprocess\nsubprocess.run(['ls'])\n", "process"),
        ("from subprocess import run\n", "process"),
        ("import os\nos.system('ls')\n", "process"),
        ("import asyncio\nasyncio.create_subprocess_exec('ls')\n", "process"),
        ("import httpx2\nhttpx2.Client()\n", "network"),
        ("import httpx2\nhttpx2.AsyncClient(base_url='x')\n", "network"),
        ("import httpx2\nhttpx2.get('http://x')\n", "network"),
        ("from openai import OpenAI\nOpenAI(api_key='k')\n", "network"),
        ("from google import genai\ngenai.Client(api_key='k')\n", "network"),
        ("genai.Client(http_options=types.HttpOptions(base_url='x'))\n", "network"),
        ("import urllib.request\nurllib.request.urlopen('http://x')\n", "network"),
        ("import socket\nsocket.create_connection(('h', 1))\n", "network"),
        ("import smtplib\nsmtplib.SMTP('h', 25)\n", "network"),
    ],
)
def test_the_walk_finds_each_kind_of_door(source: str, door: str) -> None:
    assert door in {d for d, _line, _what in _doors(ast.parse(source))}


@pytest.mark.parametrize(
    "source",
    [
        "import os\nos.environ.get('KNEO_SERV_X')\n",
        "import os\nos.environ['KNEO_SERV_X']\n",
        "import subprocess\nsubprocess.PIPE\n",
        "from importlib.metadata import version\n",
        "from openai import OpenAI\nOpenAI(api_key='k', http_client=client)\n",
        "genai.Client(http_options=types.HttpOptions(httpx_client=client))\n",
    ],
)
def test_what_is_no_door(source: str) -> None:
    assert list(_doors(ast.parse(source))) == []
