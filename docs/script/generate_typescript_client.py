#!/usr/bin/env python3
"""Regenerate ``clients/typescript/src/generated`` from ``docs/openapi.json``.

Run it after ``generate_openapi.py`` whenever the document changed (a test fails when the
committed client drifts). It installs the pinned generator with ``npm ci`` from
``clients/typescript/package-lock.json`` when ``node_modules`` is missing or stale, then runs
``npm run generate`` (``@hey-api/openapi-ts``, configured in ``openapi-ts.config.ts``).
Needs Node.js 20.19+ and npm; nothing else, and nothing at Kneo's run time.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "clients" / "typescript"
GENERATED = CLIENT / "src" / "generated"


def _npm(*args: str) -> None:
    npm = shutil.which("npm")
    if npm is None:
        sys.exit("npm is not on PATH: install Node.js 20.19 or newer")
    subprocess.run([npm, *args], cwd=CLIENT, check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    installed = CLIENT / "node_modules" / ".package-lock.json"
    lock = CLIENT / "package-lock.json"
    if not installed.exists() or installed.stat().st_mtime < lock.stat().st_mtime:
        _npm("ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error")
    shutil.rmtree(GENERATED, ignore_errors=True)
    _npm("run", "--silent", "generate", "--", "--silent")
    print(f"wrote {GENERATED.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
