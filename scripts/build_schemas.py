#!/usr/bin/env python3
"""Regenerate the published JSON Schemas in ``schemas/`` from the models, then build the
package's copies (``kneo/schemas/``, which the wheel ships, the service serves at
``/schemas/`` and ``kneo init`` copies) from them, byte for byte. ``--check`` changes
nothing and exits 1 when either folder is stale (``tests/spec/test_schema.py`` fails then).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PUBLISHED = REPO / "schemas"
PACKAGE = REPO / "kneo" / "schemas"


def generate() -> dict[str, str]:
    """File name -> text of every schema Kneo publishes."""
    sys.path.insert(0, str(REPO))
    from kneo.bundle.format import bundle_json_schema
    from kneo.evals.suite import SCHEMA_FILE, render_schema
    from kneo.policy.environment import environment_policy_json_schema
    from kneo.spec import schema

    texts = {name: schema.render(value) for name, value in schema.generate().items()}
    texts["bundle.schema.json"] = json.dumps(bundle_json_schema(), indent=2) + "\n"
    texts["environment.schema.json"] = json.dumps(environment_policy_json_schema(), indent=2) + "\n"
    texts[SCHEMA_FILE] = render_schema()
    return texts


def stale(texts: dict[str, str]) -> list[str]:
    """The files of either folder that differ from ``texts`` (or should not be there)."""
    out = []
    for folder in (PUBLISHED, PACKAGE):
        present = {p.name for p in folder.glob("*.schema.json")}
        for name in sorted(present | set(texts)):
            path = folder / name
            if name not in texts or not path.is_file() or path.read_text() != texts[name]:
                out.append(str(path.relative_to(REPO)))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="Exit 1 if a file is stale")
    args = parser.parse_args(argv)
    texts = generate()
    if args.check:
        drifted = stale(texts)
        for path in drifted:
            print(f"{path} is stale; run {Path(__file__).name}", file=sys.stderr)
        return 1 if drifted else 0
    PUBLISHED.mkdir(exist_ok=True)
    for stray in PUBLISHED.glob("*.schema.json"):
        if stray.name not in texts:
            stray.unlink()
    for name, text in texts.items():
        (PUBLISHED / name).write_text(text, encoding="utf-8")
    for stray in PACKAGE.glob("*.schema.json"):  # the package's: built from the published
        stray.unlink()
    for published in sorted(PUBLISHED.glob("*.schema.json")):
        shutil.copyfile(published, PACKAGE / published.name)
        print(f"wrote {published.relative_to(REPO)} and {PACKAGE.name}/{published.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
