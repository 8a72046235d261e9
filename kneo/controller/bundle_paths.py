"""Which (bundle, environment) a path in the watched repository speaks for.

A bundle file is ``bundles/<name>/<environment>.json`` and its signed eval results sit
beside it in ``bundles/<name>/evals/<environment>.json``: the path, never the file's
content, says which (bundle, environment) a file speaks for (content is trusted only once
verified, and then it must agree). The loader, the environment reader and the incremental
scope all read paths through here, so they agree on every odd path.
"""

from __future__ import annotations

from kneo.controller.source import BUNDLES_DIR
from kneo.names import is_valid_name

#: ``bundles/<name>/evals/<environment>.json``: signed eval results for that bundle file.
RESULTS_DIR = "evals"


def path_parts(path: str) -> tuple[str, ...]:
    """``PurePosixPath(path).parts`` for a relative path (empty and ``.`` segments dropped),
    ``()`` for an absolute one (never a bundle's): a split, a fifth of the cost, twice per
    bundle file in a pass."""
    if path.startswith("/"):
        return ()
    return tuple(p for p in path.split("/") if p and p != ".")


def identity_from_path(path: str) -> tuple[str, str] | None:
    """``(name, environment)`` of ``bundles/<name>/<environment>.json``, the only place a
    bundle file may live; ``None`` for any other path or a name that is not valid
    (:mod:`kneo.names`)."""
    parts = path_parts(path)
    if len(parts) != 3 or parts[0] != BUNDLES_DIR or not parts[2].endswith(".json"):
        return None
    name, environment = parts[1], parts[2][: -len(".json")]
    return (name, environment) if is_valid_name(name) and is_valid_name(environment) else None


def results_identity(path: str) -> tuple[str, str] | None:
    """``(name, environment)`` of an eval results file (:mod:`kneo.bundle.eval_results`)
    beside ``bundles/<name>/<environment>.json``; ``None`` for any other path."""
    parts = path_parts(path)
    if len(parts) != 4 or parts[0] != BUNDLES_DIR or parts[2] != RESULTS_DIR:
        return None
    if not parts[3].endswith(".json"):
        return None
    name, environment = parts[1], parts[3][: -len(".json")]
    return (name, environment) if is_valid_name(name) and is_valid_name(environment) else None


def results_path(bundle_path: str) -> str:
    """The eval results file of the bundle file at ``bundle_path``."""
    where = bundle_path[: -len(".json")].rsplit("/", 1)
    return f"{where[0]}/{RESULTS_DIR}/{where[1]}.json"
