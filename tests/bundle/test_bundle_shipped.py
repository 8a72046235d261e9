"""What ships in the repository: schemas in sync, environment files valid, example bundles
verifying with the demo keyring and matching today's example specs."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from kneo.bundle import load_keyring, verify_bundle
from kneo.bundle.format import bundle_json_schema
from kneo.clock import SystemClock
from kneo.policy.environment import environment_policy_json_schema

REPO = Path(__file__).resolve().parents[2]
REGENERATE = "run: python scripts/regenerate_bundles.py"
SCHEMAS = REPO / "schemas"  # the published ones (kneo/schemas: built from them)
BUNDLES = sorted((REPO / "bundles").glob("*/*.json"))


@pytest.mark.parametrize(
    ("name", "generated"),
    [
        ("bundle.schema.json", bundle_json_schema()),
        ("environment.schema.json", environment_policy_json_schema()),
    ],
)
def test_schema_files_match_the_models(name: str, generated: dict[str, object]) -> None:
    shipped = json.loads((SCHEMAS / name).read_text())
    assert shipped == generated, f"schemas/{name} is out of date; {REGENERATE}"


def test_environment_files_match_their_schema() -> None:
    schema = json.loads((SCHEMAS / "environment.schema.json").read_text())
    files = sorted((REPO / "environments").glob("*.yaml"))
    assert {f.stem for f in files} >= {"dev", "staging", "prod"}
    for path in files:
        jsonschema.validate(yaml.safe_load(path.read_text()), schema)


def test_there_are_example_bundles_for_every_environment() -> None:
    assert {p.stem for p in BUNDLES} >= {"dev", "staging", "prod"}


@pytest.mark.parametrize("path", BUNDLES, ids=[f"{p.parent.name}/{p.stem}" for p in BUNDLES])
def test_example_bundle_verifies_and_matches_its_spec(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kneo.bundle import spec_digest
    from kneo.cli.bundle_cmd import prepare_spec

    schema = json.loads((SCHEMAS / "bundle.schema.json").read_text())
    document = json.loads(path.read_text())
    jsonschema.validate(document, schema)
    verified = verify_bundle(
        path.read_bytes(), load_keyring(REPO / "examples" / "keys"), now=SystemClock().now()
    )
    assert verified.signer_key_ids == ("demo",)
    assert verified.environment == path.stem and verified.name == path.parent.name
    for var in ("KNEO_ENV", "KNEO_PROJECT_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(REPO)
    data, _, _ = prepare_spec(Path(document["source"]["path"]), path.stem)
    assert spec_digest(data) == verified.digest, f"{path} is stale; {REGENERATE}"


def test_demo_key_is_plainly_marked_demo_only() -> None:
    readme = (REPO / "examples" / "keys" / "README.md").read_text()
    assert "DEMO-ONLY" in readme and "never trust" in readme.lower()


def test_example_bundles_are_current() -> None:
    """Every example spec that passes an environment's policy has an up-to-date bundle."""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "regenerate_bundles.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
