#!/usr/bin/env python
"""Regenerate the JSON Schemas of bundles and environment files, and the example bundles.

    python scripts/regenerate_bundles.py            # write what changed
    python scripts/regenerate_bundles.py --check    # exit 1 if anything is out of date

Example bundles: every spec ``examples/<name>.yaml`` is signed for each environment in
``environments/`` with the DEMO-ONLY key ``examples/keys/demo.key`` into
``bundles/<name>/<env>.json``, through the same checks as ``kneo spec bundle sign``
(overlays, project defaults, the merged environment policy). A spec that an environment's
policy rejects gets no bundle there. A bundle that still verifies and carries the same
digest is left untouched, so regenerating does not churn Git history.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
DEMO_KEY = REPO / "examples" / "keys" / "demo.key"
DEMO_KEY_ID = "demo"
SCHEMAS = REPO / "schemas"  # the published ones: the package's copies are built from them
APPROVED_BY = "demo-signer (scripts/regenerate_bundles.py)"


def _schemas() -> dict[Path, str]:
    from kneo.bundle.format import bundle_json_schema
    from kneo.policy.environment import environment_policy_json_schema

    return {
        SCHEMAS / "bundle.schema.json": json.dumps(bundle_json_schema(), indent=2) + "\n",
        SCHEMAS / "environment.schema.json": json.dumps(environment_policy_json_schema(), indent=2)
        + "\n",
    }


def example_specs() -> list[Path]:
    """``examples/<name>.yaml`` files that are v1 specs (not overlays, configs or v0 specs)."""
    found = []
    for path in sorted((REPO / "examples").glob("*.yaml")):
        if "." in path.stem:
            continue  # an overlay such as research_agent.prod.yaml
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if (
            isinstance(data, dict)
            and data.get("version") == "v1"
            and ("agent" in data or "workflow" in data)
        ):
            found.append(path)
    return found


def _up_to_date(path: Path, digest: str, env: str) -> bool:
    from kneo.bundle import Keyring, verify_bundle
    from kneo.bundle.keys import load_signing_key
    from kneo.clock import SystemClock
    from kneo.errors import BundleError

    if not path.is_file():
        return False
    keyring = Keyring([load_signing_key(DEMO_KEY, DEMO_KEY_ID).trusted()])
    try:
        verified = verify_bundle(path.read_bytes(), keyring, now=SystemClock().now())
    except BundleError:
        return False
    return verified.digest == digest and verified.environment == env


def regenerate(check: bool) -> list[str]:
    """Bring schemas and bundles up to date (or only report, with ``check``)."""
    from kneo.bundle import dump_bundle, load_signing_key, sign_bundle, spec_digest
    from kneo.cli.bundle_cmd import git_source, prepare_spec
    from kneo.clock import SystemClock
    from kneo.errors import KneoError
    from kneo.policy.environment import load_environments

    changes: list[str] = []
    for path, text in _schemas().items():
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            changes.append(f"schema {path.relative_to(REPO)}")
            if not check:
                path.write_text(text, encoding="utf-8")
                # the package's copy is built from the published file, byte for byte
                (REPO / "kneo" / "schemas" / path.name).write_text(text, encoding="utf-8")

    key = load_signing_key(DEMO_KEY, DEMO_KEY_ID)
    environments = sorted(load_environments(REPO / "environments"))
    wanted: set[Path] = set()
    for spec_path in example_specs():
        rel = spec_path.relative_to(REPO)
        for env in environments:
            target = REPO / "bundles" / spec_path.stem / f"{env}.json"
            try:
                data, environment, summary = prepare_spec(rel, env)
            except KneoError as exc:
                print(f"skip {rel} for {env}: {exc.code}: {exc.message}")
                continue
            wanted.add(target)
            if _up_to_date(target, spec_digest(data), environment):
                continue
            changes.append(f"bundle {target.relative_to(REPO)}")
            if check:
                continue
            bundle = sign_bundle(
                data,
                key,
                name=spec_path.stem,
                environment=environment,
                approved_by=APPROVED_BY,
                approved_at=SystemClock().now(),
                source=git_source(rel),
                policy_report=summary,
            )
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(dump_bundle(bundle), encoding="utf-8")
    for stale in sorted((REPO / "bundles").glob("*/*.json")):
        if stale not in wanted:
            changes.append(f"stale {stale.relative_to(REPO)}")
            if not check:
                stale.unlink()
    return changes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report; exit 1 if stale")
    args = parser.parse_args(argv)
    os.chdir(REPO)  # the project context (environments/, no .kneo/) is the repository's
    for var in ("KNEO_ENV", "KNEO_PROJECT_CONFIG"):
        os.environ.pop(var, None)
    sys.path.insert(0, str(REPO))
    changes = regenerate(args.check)
    for change in changes:
        print(("out of date: " if args.check else "updated: ") + change)
    if not changes:
        print("schemas and example bundles are up to date")
    return 1 if args.check and changes else 0


if __name__ == "__main__":
    raise SystemExit(main())
