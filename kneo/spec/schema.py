"""JSON Schemas generated from the models, for editors and CI: published in the repository's
top-level ``schemas/``, from which the package's copies (``kneo/schemas/*.json``, which the
wheel ships, the service serves at ``/schemas/`` and ``kneo init`` copies into a project) are
built byte for byte.

``python scripts/build_schemas.py`` rewrites both folders (every schema Kneo publishes);
``python -m kneo.spec.schema [DIR]`` writes this module's into ``DIR``. Tests fail when the
files drift from the models or the copies from the published files. The shorthands the models accept through validators (keyed graph ``nodes``,
``functions: {name: "module:function"}``) are added to the schema so editors accept them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from kneo.spec.models import Spec
from kneo.spec.project import ProjectConfig, ReceiverConfig

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMAS: dict[str, str] = {
    "spec.schema.json": "Kneo spec v1",
    "spec_overlay.schema.json": "Kneo spec v1 environment overlay (specs/<name>.<env>.yaml)",
    "project_config.schema.json": "Kneo project config (.kneo/config.yaml)",
    "notification_receivers.schema.json": "Kneo notification receivers "
    "(KNEO_SERV_NOTIFICATIONS_RECEIVERS; notifications.receivers in the project config)",
}


def spec_schema() -> dict[str, Any]:
    schema = Spec.model_json_schema(by_alias=True, mode="validation")
    defs = schema["$defs"]
    nodes = defs["WorkflowSpec"]["properties"]["nodes"]
    keyed = dict(defs["StepSpec"])
    keyed["required"] = [r for r in keyed.get("required", []) if r != "id"]
    keyed["title"] = "KeyedStepSpec"
    defs["KeyedStepSpec"] = keyed
    keyed_nodes = {"type": "object", "additionalProperties": {"$ref": "#/$defs/KeyedStepSpec"}}
    defs["WorkflowSpec"]["properties"]["nodes"] = {
        "anyOf": [
            {k: v for k, v in nodes.items() if k not in {"title", "description"}},
            keyed_nodes,
        ],
        "title": "Nodes",
        "description": "Graph nodes: a list of steps, or a mapping from node id to step.",
    }
    functions = defs["ComponentsSpec"]["properties"]["functions"]
    functions["additionalProperties"] = {
        "anyOf": [
            functions["additionalProperties"],
            {"type": "string", "pattern": r"^[\w.]+:[\w.]+$"},
        ]
    }
    return _wrap(schema, "spec.schema.json")


def spec_overlay_schema() -> dict[str, Any]:
    """An environment overlay: any part of a spec, merged into it (``kneo spec resolve``).
    The spec's schema with nothing required, so a partial spec validates while a misspelt or
    mistyped field still does not; ``version`` may be left out (the spec's own counts)."""
    spec = {k: v for k, v in spec_schema().items() if k not in ("$schema", "$id", "title")}
    return _wrap(_optional(spec), "spec_overlay.schema.json")


def _optional(node: Any) -> Any:
    """``node`` without the ``required`` keyword (a list) anywhere; a property that happens
    to be named ``required`` stays."""
    if isinstance(node, dict):
        return {
            k: _optional(v)
            for k, v in node.items()
            if not (k == "required" and isinstance(v, list))
        }
    if isinstance(node, list):
        return [_optional(v) for v in node]
    return node


def project_config_schema() -> dict[str, Any]:
    return _wrap(
        ProjectConfig.model_json_schema(by_alias=True, mode="validation"),
        "project_config.schema.json",
    )


def notification_receivers_schema() -> dict[str, Any]:
    """The JSON list ``KNEO_SERV_NOTIFICATIONS_RECEIVERS`` holds (the project config's
    ``notifications.receivers`` has the same items)."""
    from pydantic import TypeAdapter

    adapter = TypeAdapter(list[ReceiverConfig])
    return _wrap(adapter.json_schema(mode="validation"), "notification_receivers.schema.json")


def _wrap(schema: dict[str, Any], name: str) -> dict[str, Any]:
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": f"https://kneo.dev/schemas/{name}",
        "title": SCHEMAS[name],
        **{k: v for k, v in schema.items() if k != "title"},
    }


def generate() -> dict[str, dict[str, Any]]:
    """File name -> schema, for every schema this package owns."""
    return {
        "spec.schema.json": spec_schema(),
        "spec_overlay.schema.json": spec_overlay_schema(),
        "project_config.schema.json": project_config_schema(),
        "notification_receivers.schema.json": notification_receivers_schema(),
    }


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=False) + "\n"


def write(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in generate().items():
        path = directory / name
        path.write_text(render(schema), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":  # pragma: no cover - exercised by hand and by the drift test
    if len(sys.argv) < 2:
        sys.exit("usage: python -m kneo.spec.schema DIR (a checkout: scripts/build_schemas.py)")
    for p in write(Path(sys.argv[1])):
        print(p)
