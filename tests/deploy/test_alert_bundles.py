"""``KneoBundleNotReady`` against a real registry: a controller reconciles a real Git
repository in which one bundle is rejected and another is deliberately removed.

The alert once fired for the removed bundle (its latest revision is ``pruned``, its Ready
condition ``False``). ``kneo_bundles`` now says whether Git still has the bundle's file
(``in_git``), and the rule counts only bundles Git asks for.

- Always on: the rule's own selector, parsed from the rule file, is applied to the real
  exposition of that registry (with ``prune`` on and off). The rule is a selector under
  aggregations, so which series it selects decides which environments it can fire for; the
  aggregations themselves are checked by ``promtool test rules`` (test_prometheus_rules.py).
- With Debian's ``prometheus`` (CI installs it): a real Prometheus scrapes that exposition
  with the rule file loaded, and the alert goes pending for the rejected bundle's environment
  and never for the removed one's.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from kneo import metrics
from kneo.clock import ManualClock
from kneo.settings import Settings
from kneo.store import open_store
from tests.deploy.prometheus_server import free_port, running

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "tests" / "controller") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests" / "controller"))

from gitops_fixtures import ENV_FILES, Keys, Repo, make_controller, spec  # noqa: E402

RULES = ROOT / "deploy" / "prometheus" / "kneo-alerts.yaml"
ALERT = "KneoBundleNotReady"


def rule_expression() -> str:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    [rule] = [r for g in groups for r in g["rules"] if r.get("alert") == ALERT]
    return str(rule["expr"])


def selector(expression: str) -> dict[str, str]:
    """The equality matchers of the expression's one ``kneo_bundles{...}`` selector."""
    [body] = re.findall(r"kneo_bundles\{([^}]*)\}", expression)
    matchers = [m.strip() for m in body.split(",") if m.strip()]
    parsed = [re.fullmatch(r'(\w+)="([^"]*)"', m) for m in matchers]
    assert all(parsed), f"only label=value matchers are evaluated here: {matchers}"
    return {m.group(1): m.group(2) for m in parsed if m}


def registry(tmp_path: Path, *, prune: bool) -> Any:
    """A store reconciled from Git: in ``dev`` one bundle serving as Git asks and one whose
    new release is rejected (tampered); in ``qa`` one bundle released, then removed."""
    clock = ManualClock(datetime(2026, 3, 1, tzinfo=UTC))
    store = open_store(f"sqlite:///{tmp_path / 'kneo.db'}", clock=clock)
    repo = Repo(tmp_path / "git")
    for env, text in {**ENV_FILES, "qa": "version: v1\n"}.items():
        repo.write(f"environments/{env}.yaml", text)
    keys = Keys(tmp_path / "keys")
    controller = make_controller(store, repo, keys, clock, tmp_path, prune=prune)
    repo.write("bundles/helper/dev.json", keys.bundle("helper", "dev", spec("ok")))
    repo.write("bundles/bad/dev.json", keys.bundle("bad", "dev", spec("v1")))
    repo.write("bundles/gone/qa.json", keys.bundle("gone", "qa", spec("old")))
    repo.commit("release")
    assert controller.reconcile_once().ok
    tampered = json.loads(keys.bundle("bad", "dev", spec("v2")))
    tampered["spec"]["agent"]["system_prompt"] = "tampered"
    repo.write("bundles/bad/dev.json", json.dumps(tampered))
    repo.remove("bundles/gone")
    repo.commit("reject one, remove one")
    assert controller.reconcile_once().ok
    return store


def exposition(store: Any) -> list[tuple[dict[str, str], float]]:
    settings = Settings.from_env({})
    body, _ = metrics.render(metrics.exposition_registry(store, settings))
    return [
        (dict(s.labels), s.value)
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
        if s.name == "kneo_bundles"
    ]


@pytest.fixture(params=[True, False], ids=["prune", "prune-off"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    s = registry(tmp_path, prune=request.param)
    yield s
    s.close()


def test_the_rule_selects_the_rejected_bundle_and_not_the_removed_one(store: Any) -> None:
    samples = exposition(store)
    removed = [labels for labels, _ in samples if labels["environment"] == "qa"]
    assert removed and all(labels["in_git"] == "false" for labels in removed)
    assert all(labels["ready"] == "False" for labels in removed)  # what once fired
    wanted = selector(rule_expression())
    selected = [
        (labels, value)
        for labels, value in samples
        if all(labels.get(k) == v for k, v in wanted.items())
    ]
    assert {labels["environment"] for labels, value in selected if value > 0} == {"dev"}
    assert [labels["status"] for labels, _ in selected] == ["rejected"]


def test_a_real_prometheus_alerts_for_the_rejected_bundle_only(tmp_path: Path) -> None:
    store = registry(tmp_path / "registry", prune=True)
    port = free_port()
    settings = dataclasses.replace(
        Settings.from_env({}), metrics_port=port, metrics_host="127.0.0.1"
    )
    server = metrics.serve_port(store, settings)
    try:
        with running(tmp_path, [f"127.0.0.1:{port}"], rule_files=[RULES]) as prometheus:
            prometheus.scraped(1)
            pending = prometheus.wait_for(
                f"{ALERT} pending",
                lambda: [a for a in prometheus.alerts() if a["labels"]["alertname"] == ALERT],
            )
            assert [a["labels"]["environment"] for a in pending] == ["dev"]
            assert pending[0]["state"] == "pending"  # `for: 15m` runs; the expression matched
            # the removed bundle is scraped, not Ready, and matches nothing in the rule
            assert prometheus.query('kneo_bundles{environment="qa",ready="False"}')
            fired = prometheus.query(rule_expression())
            assert [(s["metric"]["environment"], s["value"][1]) for s in fired] == [("dev", "1")]
    finally:
        server.shutdown()
        store.close()
