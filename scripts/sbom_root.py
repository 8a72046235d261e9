"""Make the installed Kneo the SBOM's subject: its ``metadata.component``.

``cyclonedx-py environment`` lists every distribution of an environment as a component and
leaves ``metadata.component`` empty; given ``--pyproject`` it describes the source tree
instead, and drops the installed wheel (with its digest) from the document. This moves the
installed distribution's own component, as cyclonedx-py wrote it (version, license, the
wheel's SHA-256, the Project-URLs), to ``metadata.component`` as the application, keeping its
``bom-ref`` so the dependency graph still starts from it; with ``--validate`` it checks the
result against the CycloneDX schema (the CycloneDX library's strict validator: seconds per
hundred components). The release workflow runs it (.github/workflows/release.yml), and so does
tests/release/test_wheel_journey.py (which validates the result itself).

    python scripts/sbom_root.py --validate dist/kneo_platform-X.Y.Z.cdx.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator


def promote(document: dict[str, object], name: str) -> dict[str, object]:
    """``document`` with the component ``name`` as its subject (a new dict)."""
    components = list(document.get("components") or [])  # type: ignore[call-overload]
    ours = [c for c in components if c.get("name") == name]
    if len(ours) != 1:
        raise SystemExit(f"sbom_root: expected one component named {name!r}, found {len(ours)}")
    root = {**ours[0], "type": "application"}
    metadata = {**document.get("metadata", {}), "component": root}  # type: ignore[dict-item]
    rest = [c for c in components if c.get("name") != name]
    return {**document, "metadata": metadata, "components": rest}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sbom", type=Path, help="a CycloneDX JSON document, rewritten in place")
    parser.add_argument("--name", default="kneo-platform", help="the subject's distribution")
    parser.add_argument("--validate", action="store_true", help="check the result's schema")
    args = parser.parse_args(argv)
    document = json.loads(args.sbom.read_text(encoding="utf-8"))
    text = json.dumps(promote(document, args.name), indent=2, sort_keys=True) + "\n"
    version = SchemaVersion.from_version(document.get("specVersion", "1.6"))
    problems = JsonStrictValidator(version).validate_str(text) if args.validate else None
    if problems is not None:
        print(f"sbom_root: the result is not valid CycloneDX: {problems}", file=sys.stderr)
        return 1
    args.sbom.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
