"""deploy/prometheus's alert rules: each expression names only metrics Kneo exposes (as the
dashboard's do), every rule is documented, and Prometheus's own ``promtool`` loads the file
and runs its unit tests (``kneo-alerts.test.yaml``: each alert fires when it should and not
before). promtool is Debian's ``prometheus`` package (.ci/run installs it); without it those
two tests skip and say why, except in CI, where they fail."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.metric_names import exposed, metrics_named
from tests.npm_packages import unavailable

RULES_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
RULES = RULES_DIR / "kneo-alerts.yaml"
#: What the issue asked the rules to watch, by the alert that does.
WATCHED = {
    "KneoHumanTaskWaitingTooLong": "an old pending task",
    "KneoReconcileFailing": "a failing reconcile",
    "KneoNotificationsDead": "dead notifications",
    "KneoQueueLagging": "queue lag",
}


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_every_expression_names_only_exposed_metrics(tmp_path: Path) -> None:
    names = exposed(tmp_path)
    for rule in rules():
        used = metrics_named(rule["expr"])
        assert used, f"{rule['alert']} reads no Kneo metric"
        assert not used - set(names), f"{rule['alert']}: unknown {sorted(used - set(names))}"


def test_every_rule_is_named_graded_and_explained() -> None:
    alerts = [rule["alert"] for rule in rules()]
    assert len(set(alerts)) == len(alerts)
    assert set(WATCHED) <= set(alerts)
    for rule in rules():
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), rule["alert"]
        assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    if promtool is None:
        unavailable("promtool is not on PATH (Debian: apt-get install prometheus)")
    assert promtool is not None
    return subprocess.run(
        [promtool, *args], cwd=RULES_DIR, capture_output=True, text=True, timeout=120
    )


def test_promtool_loads_the_rules() -> None:
    checked = _promtool("check", "rules", RULES.name)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(rules())} rules found" in checked.stdout


def test_promtool_unit_tests_fire_each_alert_when_they_should() -> None:
    tested = _promtool("test", "rules", "kneo-alerts.test.yaml")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    plan = yaml.safe_load((RULES_DIR / "kneo-alerts.test.yaml").read_text())
    fired = {
        case["alertname"]
        for test in plan["tests"]
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    assert fired == {rule["alert"] for rule in rules()}, "an alert has no test that fires it"
