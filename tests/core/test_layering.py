"""The pure core never imports storage, web or CLI frameworks (ARCHITECTURE: imports point down)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

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
