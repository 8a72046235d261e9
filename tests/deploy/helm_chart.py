"""The Helm chart (deploy/helm/kneo) rendered by Helm itself, and the kustomize base beside it.

Helm's engine, in this order: a ``helm`` binary (``KNEO_HELM``, else ``helm`` on PATH, else the
one ``scripts/build_helm.sh`` caches in ``~/.cache/kneo-tools/bin``), running ``helm template``
and ``helm lint --strict``; else Helm's own Go SDK through ``helm-python-sdk`` (the dev extra:
the same chart loader, values merge and template engine ``helm template`` runs, compiled into
a library), whose ``render`` and ``lint`` are the binary's. Neither: the tests skip and say
why, except under CI (``CI`` set), where they fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "kneo"
#: The binary scripts/build_helm.sh builds (and .ci/run caches between runs).
CACHED = Path.home() / ".cache" / "kneo-tools" / "bin" / "helm"
#: The oldest Kubernetes minor the chart promises (Chart.yaml kubeVersion).
KUBE_VERSION = "1.29.0"


@cache
def helm_binary() -> str | None:
    for candidate in (os.environ.get("KNEO_HELM"), shutil.which("helm"), str(CACHED)):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def _sdk() -> Any:
    try:
        import helm_python
    except ImportError:
        return None
    return helm_python


def engine() -> str:
    """Which Helm renders here: ``binary`` or ``sdk`` (skips, or fails under CI, if neither)."""
    if helm_binary():
        return "binary"
    if _sdk() is not None:
        return "sdk"
    reason = (
        "no Helm here: neither a helm binary (KNEO_HELM, PATH, or scripts/build_helm.sh's "
        f"{CACHED}) nor helm-python-sdk (pip install -e '.[dev]')"
    )
    if os.environ.get("CI"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def render(
    values: dict[str, Any] | None = None, *, release: str = "kneo", namespace: str = "kneo"
) -> list[dict[str, Any]]:
    """``helm template`` of the chart with ``values`` (hooks included): the objects."""
    values = values or {}
    if engine() == "binary":
        done = subprocess.run(
            [helm_binary() or "helm", "template", release, str(CHART), "--namespace", namespace,
             "--kube-version", KUBE_VERSION, "--values", "-"],
            input=yaml.safe_dump(values), capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        texts = [done.stdout]
    else:
        with _sdk().Chart.load(str(CHART)) as chart:
            rendered = chart.render(values, name=release, namespace=namespace, is_install=True)
        texts = [text for path, text in sorted(rendered.items()) if not path.endswith(".txt")]
    return [doc for text in texts for doc in yaml.safe_load_all(text) if doc]


def refusal(values: dict[str, Any]) -> str:
    """What Helm says when it refuses to render ``values`` (it must refuse)."""
    if engine() == "binary":
        done = subprocess.run(
            [helm_binary() or "helm", "template", "kneo", str(CHART), "--values", "-"],
            input=yaml.safe_dump(values), capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode != 0, f"helm rendered {values}"
        return done.stderr
    with _sdk().Chart.load(str(CHART)) as chart:
        try:
            chart.render(values, name="kneo", namespace="kneo", is_install=True)
        except _sdk().HelmError as error:
            return str(error)
    raise AssertionError(f"helm rendered {values}")


def lint(values: dict[str, Any] | None = None) -> list[str]:
    """``helm lint --strict``: the warnings and errors (an ``icon`` suggestion is not one)."""
    values = values or {}
    if engine() == "binary":
        done = subprocess.run(
            [helm_binary() or "helm", "lint", "--strict", str(CHART), "--values", "-"],
            input=yaml.safe_dump(values), capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        found = [
            line for line in done.stdout.splitlines() if line.startswith(("[WARNING]", "[ERROR]"))
        ]
        return found if found or done.returncode == 0 else [done.stdout + done.stderr]
    report = _sdk().lint(str(CHART), values, strict=True, kube_version=f"v{KUBE_VERSION}")
    found = [m["error"] for m in report["messages"] if m["severity"] >= 2]
    return found + list(report["errors"])


__all__ = ["CHART", "KUBE_VERSION", "engine", "helm_binary", "lint", "refusal", "render"]
