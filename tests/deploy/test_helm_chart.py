"""The Helm chart: rendered by Helm (tests/deploy/helm_chart.py), valid Kubernetes for the
default and the production values, the same objects as the kustomize base for the same
settings, each role given only the secrets it reads, egress only where a role goes, the
migrations as an upgrade hook, and the alert rules the repository ships."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from kneo.engine.providers.registry import REMOTE_PROVIDERS
from kneo.envcheck import CLIENT_SECRETS, ROLE_SECRETS
from kneo.settings import Settings
from tests.deploy import helm_chart
from tests.deploy.test_deploy_files import K8S, K8S_VERSION, kubectl, render

PRODUCTION = helm_chart.CHART / "values-production.example.yaml"
#: Custom resources of the Prometheus Operator: not in the schemas kubernetes-validate bundles.
CRDS = {"PodMonitor", "ServiceMonitor", "PrometheusRule"}
#: What only Helm adds to an object: its release bookkeeping.
HELM_LABELS = {
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/part-of",
    "helm.sh/chart",
}
ROLES = {"kneo-api": "api", "kneo-worker": "worker", "kneo-controller": "controller"}
#: The keys each provider reads when a spec names none: the chart's secrets.models.
MODEL_KEYS = {variable for _, _, variable in REMOTE_PROVIDERS.values()}


def production() -> dict[str, Any]:
    return yaml.safe_load(PRODUCTION.read_text())  # type: ignore[no-any-return]


def by_name(docs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def role_of(doc: dict[str, Any]) -> str:
    return "migrate" if doc["kind"] == "Job" else ROLES[doc["metadata"]["name"]]


@pytest.mark.parametrize("shape", ["default", "production"])
def test_the_chart_lints_and_renders_valid_kubernetes(shape: str) -> None:
    values = production() if shape == "production" else {}
    assert helm_chart.lint(values) == []
    docs = helm_chart.render(values, namespace="kneo")
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "PodDisruptionBudget", "Job", "NetworkPolicy"} <= kinds
    for doc in docs:
        if doc["kind"] in CRDS:
            continue
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    if shape == "production":  # the optional parts the production values turn on
        assert kinds >= CRDS
        assert ("ConfigMap", "kneo-trusted-keys") in by_name(docs)


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"api": {"replica": 3}}, "replica"),
        ({"worker": {"concurrency": "two"}}, "/worker/concurrency"),
        (
            {"networkPolicy": {"egress": {"git": {"cidrs": ["github.com"]}}}},
            "/networkPolicy/egress/git/cidrs/0",
        ),
        ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
    ],
)
def test_bad_values_are_refused_naming_the_field(values: dict[str, Any], named: str) -> None:
    """values.schema.json: a misspelt or mistyped value stops the render, naming where."""
    assert named in helm_chart.refusal(values)


def test_validation_would_catch_a_mistake_the_chart_let_through() -> None:
    deployment = next(d for d in helm_chart.render() if d["kind"] == "Deployment")
    broken = copy.deepcopy(deployment)
    pod_spec(broken)["terminationGracePeriod"] = 45  # for terminationGracePeriodSeconds
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def _strip(value: Any) -> Any:
    """``value`` without Helm's release labels and hook annotations (kustomize has neither)."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key in HELM_LABELS or str(key).startswith("helm.sh/"):
                continue
            item = _strip(item)
            if key in ("labels", "annotations") and not item:
                continue
            out[key] = item
        return out
    if isinstance(value, list):
        return [_strip(item) for item in value]
    return value


def test_kustomize_and_helm_render_the_same_objects_for_the_same_settings() -> None:
    if not kubectl():
        pytest.skip("kubectl is not installed: the kustomize base cannot be rendered")
    base = by_name([_strip(d) for d in render(K8S / "base")])
    chart = by_name([_strip(d) for d in helm_chart.render({"image": {"tag": "local"}})])
    assert set(chart) == set(base)
    for key, doc in chart.items():
        assert doc == base[key], key
    # and a setting changed on both sides changes both the same way
    changed = helm_chart.render({"image": {"tag": "local"}, "worker": {"replicas": 5}})
    assert by_name(changed)[("Deployment", "kneo-worker")]["spec"]["replicas"] == 5


def secret_variables() -> set[str]:
    """The variables whose value Kneo treats as a secret, found by planting a value in each
    variable Settings reads and asking which come back from ``secret_values()``."""
    found = set()
    for name in Settings.variable_names():
        planted = "postgresql+psycopg://u:planted-secret-0123@db/kneo" if "URL" in name else (
            "operator:planted-secret-0123:operator" if name == "KNEO_SERV_API_KEYS"
            else "planted-secret-0123"
        )  # fmt: skip
        try:
            settings = Settings.from_env({name: planted})
        except Exception:  # a variable of another type (a number, a path): not a secret
            continue
        if any("planted-secret-0123" in value for value in settings.secret_values()):
            found.add(name)
    return found


def test_the_role_table_covers_every_secret_the_settings_read() -> None:
    secrets = secret_variables()
    assert {"KNEO_SERV_DATABASE_URL", "KNEO_SERV_GIT_TOKEN", "KNEO_SERV_API_KEYS"} <= secrets
    served = set().union(*ROLE_SECRETS.values())
    assert secrets == served | set(CLIENT_SECRETS), sorted(secrets ^ (served | set(CLIENT_SECRETS)))
    assert not served & set(CLIENT_SECRETS)
    values = yaml.safe_load((helm_chart.CHART / "values.yaml").read_text())["secrets"]
    for role, names in ROLE_SECRETS.items():
        assert set(values[role]) == set(names), role
    assert set(values["models"]) == MODEL_KEYS


def _secret_keys(container: dict[str, Any]) -> set[str]:
    assert not any("secretRef" in source for source in container.get("envFrom", []))
    return {
        entry["valueFrom"]["secretKeyRef"]["key"]
        for entry in container.get("env", [])
        if "secretKeyRef" in entry.get("valueFrom", {})
    }


@pytest.mark.parametrize("renderer", ["helm", "kustomize"])
def test_each_role_gets_only_the_secrets_it_reads(renderer: str) -> None:
    if renderer == "kustomize" and not kubectl():
        pytest.skip("kubectl is not installed: the kustomize base cannot be rendered")
    docs = helm_chart.render() if renderer == "helm" else render(K8S / "base")
    workloads = [d for d in docs if d["kind"] in ("Deployment", "Job")]
    assert len(workloads) == 4
    for doc in workloads:
        role = role_of(doc)
        [container] = pod_spec(doc)["containers"]
        wanted = set(ROLE_SECRETS[role]) | (MODEL_KEYS if role in ("api", "worker") else set())
        assert _secret_keys(container) == wanted, role
        assert pod_spec(doc)["automountServiceAccountToken"] is False
    # a role's extra keys reach that role only
    extra = helm_chart.render({"secrets": {"extra": {"worker": ["SLACK_BOT_TOKEN"]}}})
    for doc in extra:
        if doc["kind"] in ("Deployment", "Job"):
            [container] = pod_spec(doc)["containers"]
            assert ("SLACK_BOT_TOKEN" in _secret_keys(container)) == (role_of(doc) == "worker")


def _egress(docs: list[dict[str, Any]], labels: dict[str, str]) -> list[dict[str, Any]]:
    """The egress rules of every policy selecting a pod with ``labels``."""
    rules: list[dict[str, Any]] = []
    for policy in docs:
        if policy["kind"] != "NetworkPolicy":
            continue
        if policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items():
            rules += policy["spec"].get("egress", [])
    return rules


def test_egress_goes_only_where_each_role_goes() -> None:
    values = {
        "networkPolicy": {
            "egress": {
                "postgresql": {"cidrs": ["192.0.2.10/32"]},
                "git": {"cidrs": ["203.0.113.0/24"], "except": [], "ports": [443, 22]},
                "models": {"cidrs": ["198.51.100.0/24"], "except": []},
            }
        }
    }
    docs = helm_chart.render(values)
    deny = by_name(docs)[("NetworkPolicy", "kneo-default-deny")]
    assert deny["spec"]["policyTypes"] == ["Ingress", "Egress"] and "egress" not in deny["spec"]
    for doc in docs:
        if doc["kind"] not in ("Deployment", "Job"):
            continue
        role = role_of(doc)
        rules = _egress(docs, doc["spec"]["template"]["metadata"]["labels"])
        blocks = {
            peer["ipBlock"]["cidr"] for rule in rules for peer in rule["to"] if "ipBlock" in peer
        }
        expected = {"192.0.2.10/32"} | {
            "controller": {"203.0.113.0/24"},
            "api": {"198.51.100.0/24"},
            "worker": {"198.51.100.0/24"},
            "migrate": set(),
        }[role]
        assert blocks == expected, role
        ports = {(p["port"], p.get("protocol")) for rule in rules for p in rule["ports"]}
        assert (53, "UDP") in ports and (5432, "TCP") in ports
        assert ((22, "TCP") in ports) == (role == "controller"), role
    # the defaults: the public internet on HTTPS, private ranges and cloud metadata excepted
    default = by_name(helm_chart.render())[("NetworkPolicy", "kneo-egress-worker-models")]
    [peer] = default["spec"]["egress"][0]["to"]
    assert peer["ipBlock"]["cidr"] == "0.0.0.0/0" and "169.254.0.0/16" in peer["ipBlock"]["except"]
    off = helm_chart.render({"networkPolicy": {"egress": {"enabled": False}}})
    assert not any(
        "Egress" in d["spec"].get("policyTypes", []) for d in off if d["kind"] == "NetworkPolicy"
    )


def test_the_api_drains_before_it_stops() -> None:
    docs = by_name(helm_chart.render({"api": {"preStopSleepSeconds": 7}}))
    pod = pod_spec(docs[("Deployment", "kneo-api")])
    [container] = pod["containers"]
    assert container["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "7"]
    assert pod["terminationGracePeriodSeconds"] > 7 + 30  # the sleep, then requests in flight
    worker = pod_spec(docs[("Deployment", "kneo-worker")])
    assert "--grace-seconds" in worker["containers"][0]["args"]
    grace = int(
        worker["containers"][0]["args"][
            worker["containers"][0]["args"].index("--grace-seconds") + 1
        ]
    )
    assert worker["terminationGracePeriodSeconds"] > grace


def test_migrations_run_as_an_upgrade_hook_before_anything_else_exists() -> None:
    job = by_name(helm_chart.render())[("Job", "kneo-migrate")]
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert "hook-succeeded" in annotations["helm.sh/hook-delete-policy"]
    pod = pod_spec(job)
    # a pre-install hook runs before the release's ServiceAccount and ConfigMap exist
    assert "serviceAccountName" not in pod and pod["automountServiceAccountToken"] is False
    [container] = pod["containers"]
    assert container["args"][:2] == ["db", "upgrade"]
    assert container["envFrom"] == [{"configMapRef": {"name": "kneo-config", "optional": True}}]
    plain = by_name(helm_chart.render({"migrations": {"hook": False}}))[("Job", "kneo-migrate")]
    assert "annotations" not in plain["metadata"]
    assert ("Job", "kneo-migrate") not in by_name(
        helm_chart.render({"migrations": {"enabled": False}})
    )


def test_the_alert_rules_and_monitors_are_the_repositorys() -> None:
    shipped = Path(helm_chart.CHART.parents[1] / "prometheus" / "kneo-alerts.yaml")
    copy_in_chart = helm_chart.CHART / "files" / "kneo-alerts.yaml"
    assert copy_in_chart.read_bytes() == shipped.read_bytes()  # cp deploy/prometheus/... files/
    docs = by_name(helm_chart.render(production()))
    rule = docs[("PrometheusRule", "kneo")]
    assert rule["spec"] == yaml.safe_load(shipped.read_text())
    labels = docs[("Deployment", "kneo-api")]["spec"]["template"]["metadata"]["labels"]
    monitor = docs[("PodMonitor", "kneo")]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = docs[("Service", "kneo-metrics")]
    assert service["spec"]["selector"].items() <= labels.items()
    scraper = docs[("ServiceMonitor", "kneo")]
    assert (
        scraper["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert scraper["spec"]["endpoints"][0]["port"] == "metrics"


def test_a_second_release_in_the_namespace_does_not_collide() -> None:
    first = helm_chart.render()
    second = helm_chart.render(release="staging")
    assert not set(by_name(first)) & set(by_name(second))
    api = by_name(second)[("Deployment", "staging-kneo-api")]
    assert api["spec"]["selector"]["matchLabels"]["app.kubernetes.io/instance"] == "staging"
    [container] = pod_spec(api)["containers"]
    assert {e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"]} == {
        "staging-kneo-secrets"
    }
