"""deploy/grafana's dashboard queries only metrics Kneo exposes, and uses every one of them."""

from __future__ import annotations

import json
import re
from pathlib import Path

from kneo import metrics
from kneo.settings import Settings
from kneo.store import open_store

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "kneo-dashboard.json"
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


def test_every_expression_names_only_exposed_metrics(tmp_path: Path) -> None:
    names = exposed(tmp_path)
    panels = json.loads(DASHBOARD.read_text())["panels"]
    exprs = [t["expr"] for p in panels for t in p["targets"]]
    used = {m for e in exprs for m in re.findall(r"\bkneo_[a-z_]+\b", e)}
    assert used, "the dashboard queries nothing"
    assert not used - set(names), f"unknown metrics: {sorted(used - set(names))}"
    assert {names[m] for m in used} == set(names.values()), "a metric has no panel"
