"""JSON Schemas: in sync with the models, and every example validates against them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator

from kneo.spec import schema as schema_module
from kneo.spec.loader import load_spec

from .conftest import EXAMPLE_SPECS, EXAMPLES, REPO

SCHEMAS = REPO / "schemas"  # the published ones
PACKAGE = REPO / "kneo" / "schemas"  # built from them: served, shipped, copied by `kneo init`


@pytest.mark.parametrize("name", sorted(schema_module.SCHEMAS))
def test_committed_schema_matches_the_models(name: str) -> None:
    committed = json.loads((SCHEMAS / name).read_text())
    assert committed == schema_module.generate()[name], (
        f"schemas/{name} is stale: run 'python scripts/build_schemas.py' and commit the result"
    )


def test_the_package_copies_are_the_published_schemas() -> None:
    """kneo/schemas/ is built from schemas/: the same files, byte for byte (the design's
    top-level folder is what the repository publishes; the package ships its copy)."""
    published = {p.name: p.read_bytes() for p in SCHEMAS.glob("*.schema.json")}
    package = {p.name: p.read_bytes() for p in PACKAGE.glob("*.schema.json")}
    assert sorted(published) == sorted(package) == sorted(
        [*schema_module.SCHEMAS, "bundle.schema.json", "environment.schema.json",
         "eval_suite.schema.json"]
    ), "run 'python scripts/build_schemas.py'"  # fmt: skip
    stale = [name for name in published if published[name] != package[name]]
    assert not stale, f"kneo/schemas/{stale} differ from schemas/: run scripts/build_schemas.py"


def test_the_build_reports_no_drift() -> None:
    """``scripts/build_schemas.py --check``: every schema the models give is the published
    one and its package copy."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "build_schemas", REPO / "scripts" / "build_schemas.py"
    )
    assert spec and spec.loader
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    texts = build.generate()
    assert build.stale(texts) == []
    assert build.stale({**texts, "spec.schema.json": "{}\n"}) == [
        "schemas/spec.schema.json",
        "kneo/schemas/spec.schema.json",
    ]


def _validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / name).read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


@pytest.mark.parametrize("path", EXAMPLE_SPECS, ids=[p.stem for p in EXAMPLE_SPECS])
def test_examples_validate_against_the_schema(path: Path) -> None:
    validator = _validator("spec.schema.json")
    raw = yaml.safe_load(path.read_text())
    assert list(validator.iter_errors(raw)) == []
    for env in ("dev", "staging", "prod"):
        if path.with_name(f"{path.stem}.{env}.yaml").exists():
            assert (
                list(
                    validator.iter_errors(
                        load_spec(path, env=env, declared=("dev", "staging", "prod")).data
                    )
                )
                == []
            )


def test_examples_carry_the_schema_comment() -> None:
    for path in EXAMPLE_SPECS:
        assert path.read_text().startswith(
            "# yaml-language-server: $schema=../kneo/schemas/spec.schema.json"
        ), path
    overlays = sorted(EXAMPLES.glob("research_agent.*.yaml"))
    assert len(overlays) == 3
    for path in overlays:  # partial specs: the overlay schema, which requires nothing
        assert path.read_text().startswith(
            "# yaml-language-server: $schema=../kneo/schemas/spec_overlay.schema.json"
        ), path
        assert (
            list(
                _validator("spec_overlay.schema.json").iter_errors(yaml.safe_load(path.read_text()))
            )
            == []
        )
        assert list(_validator("spec.schema.json").iter_errors(yaml.safe_load(path.read_text())))


def test_the_overlay_schema_still_refuses_a_misspelt_or_mistyped_field() -> None:
    overlay = _validator("spec_overlay.schema.json")
    assert list(overlay.iter_errors({"agent": {"model": {"provider": "dummy"}}})) == []
    assert list(overlay.iter_errors({"agent": {"modle": {"provider": "dummy"}}}))
    assert list(overlay.iter_errors({"agent": {"model": {"temperature": "hot"}}}))


def test_project_configs_validate_against_the_schema() -> None:
    validator = _validator("project_config.schema.json")
    for path in (EXAMPLES / "project_config.yaml", REPO / ".kneo" / "config.yaml"):
        assert list(validator.iter_errors(yaml.safe_load(path.read_text()))) == []


def test_schema_rejects_what_the_models_reject() -> None:
    validator = _validator("spec.schema.json")
    assert list(validator.iter_errors({"version": "v1", "agent": {"name": "a", "colour": "red"}}))
    keyed = {
        "version": "v1",
        "workflow": {"type": "graph", "start": "n", "nodes": {"n": {"kind": "agent", "ref": "a"}}},
    }
    assert list(validator.iter_errors(keyed)) == []


def test_write_regenerates(tmp_path: Path) -> None:
    written = schema_module.write(tmp_path)
    assert sorted(p.name for p in written) == sorted(schema_module.SCHEMAS)
    assert (tmp_path / "spec.schema.json").read_text() == (SCHEMAS / "spec.schema.json").read_text()
