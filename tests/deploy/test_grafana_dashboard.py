"""deploy/grafana's dashboard queries only metrics Kneo exposes, and uses every one of them."""

from __future__ import annotations

import json
from pathlib import Path

from tests.deploy.metric_names import exposed, metrics_named

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "kneo-dashboard.json"


def test_every_expression_names_only_exposed_metrics(tmp_path: Path) -> None:
    names = exposed(tmp_path)
    panels = json.loads(DASHBOARD.read_text())["panels"]
    exprs = [t["expr"] for p in panels for t in p["targets"]]
    used = {m for e in exprs for m in metrics_named(e)}
    assert used, "the dashboard queries nothing"
    assert not used - set(names), f"unknown metrics: {sorted(used - set(names))}"
    assert {names[m] for m in used} == set(names.values()), "a metric has no panel"
