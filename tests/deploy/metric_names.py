"""The metric names Kneo's exposition can carry, for checking the queries shipped under
deploy/ (the Grafana dashboard, the Prometheus alert rules) against them."""

from __future__ import annotations

import re
from pathlib import Path

from kneo import metrics
from kneo.settings import Settings
from kneo.store import open_store

_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def exposed(tmp_path: Path) -> dict[str, str]:
    """Every sample name the exposition can carry -> its family."""
    settings = Settings.from_env({})
    store = open_store(None, settings=settings, state_dir=tmp_path)
    try:
        body, _ = metrics.render(metrics.exposition_registry(store, settings))
    finally:
        store.close()
    names: dict[str, str] = {}
    for family, kind in re.findall(r"^# TYPE (\S+) (\S+)$", body.decode(), re.MULTILINE):
        base = family.removesuffix("_total") if kind == "counter" else family
        names.update({base + suffix: base for suffix in _SUFFIXES[kind]})
    return names


def metrics_named(expression: str) -> set[str]:
    """The ``kneo_*`` metric names a PromQL expression reads."""
    return set(re.findall(r"\bkneo_[a-z0-9_]+\b", expression))


__all__ = ["exposed", "metrics_named"]
