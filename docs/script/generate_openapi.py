#!/usr/bin/env python3
"""Regenerate ``docs/openapi.json`` from the service app (``--check`` fails on drift).

The document describes the versioned ``/v1`` API and the health probes; legacy unversioned
aliases are served but deliberately left out.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "docs" / "openapi.json"


def render() -> str:
    """The OpenAPI document as stable, pretty JSON (independent of the environment)."""
    sys.path.insert(0, str(ROOT))
    from kneo.service import create_app
    from kneo.settings import Settings

    app = create_app(configure_default_manager=False, settings=Settings())
    schema: dict[str, Any] = app.openapi()
    # The committed document describes the /v1 contract, not one build: the build's version
    # (from the Git tag, different on every commit) is what a running service's
    # /openapi.json says.
    schema["info"]["version"] = "v1"
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="Exit 1 if the file is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != text:
            print(
                f"{OUTPUT.relative_to(ROOT)} is stale; run {Path(__file__).name}", file=sys.stderr
            )
            return 1
        return 0
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
