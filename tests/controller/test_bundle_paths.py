"""Which (bundle, environment) a path in the repository speaks for: the split the loader
uses gives PurePosixPath's answer on every path, odd ones included."""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest

from kneo.controller.bundle_paths import identity_from_path, results_identity

PATHS = [
    "bundles/agent/prod.json",
    "bundles/agent/evals/prod.json",
    "bundles//agent/prod.json",
    "bundles/./agent/prod.json",
    "./bundles/agent/prod.json",
    "bundles/agent/./evals/prod.json",
    "bundles/agent/prod.json/",
    "/bundles/agent/prod.json",
    "//bundles/agent/prod.json",
    "bundles/../prod.json",
    "bundles/agent/..json",
    "bundles/agent/.json",
    "bundles/Agent/prod.json",
    "bundles/agent/prod.yaml",
    "bundles/agent/evals/prod",
    "bundles/a/b/c.json",
    "environments/prod.yaml",
    "bundles/agent",
    "",
]


def _reference(path: str, results: bool) -> tuple[str, str] | None:
    """What the loader answered when it split paths with PurePosixPath."""
    from kneo.names import is_valid_name

    parts = PurePosixPath(path).parts
    if results:
        ok = len(parts) == 4 and parts[0] == "bundles" and parts[2] == "evals"
        ok = ok and parts[3].endswith(".json")
        name, env = (parts[1], parts[3][:-5]) if ok else ("", "")
    else:
        ok = len(parts) == 3 and parts[0] == "bundles" and parts[2].endswith(".json")
        name, env = (parts[1], parts[2][:-5]) if ok else ("", "")
    return (name, env) if ok and is_valid_name(name) and is_valid_name(env) else None


@pytest.mark.parametrize("path", PATHS)
def test_identity_is_that_of_the_path_parts(path: str) -> None:
    assert identity_from_path(path) == _reference(path, results=False)
    assert results_identity(path) == _reference(path, results=True)


def test_the_usual_paths_are_read() -> None:
    assert identity_from_path("bundles/agent/prod.json") == ("agent", "prod")
    assert results_identity("bundles/agent/evals/prod.json") == ("agent", "prod")
    assert identity_from_path("bundles/agent/evals/prod.json") is None
