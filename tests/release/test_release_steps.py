"""The release workflow (.github/workflows/release.yml) and the steps of it that run here.

The wheel, sdist and SBOM: tests/release/test_wheel_journey.py; the image with its revision:
tests/deploy/test_container_journey.py; the TypeScript client package: below.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import yaml

from tests.npm_packages import node_modules_for, tool
from tests.release.wheel_build import ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "release.yml"
CLIENT = ROOT / "clients" / "typescript"


def _steps() -> dict[str, str]:
    document = yaml.safe_load(WORKFLOW.read_text())
    assert document[True]["push"]["tags"] == ["v*"]  # YAML 1.1 reads the key `on` as true
    (job,) = document["jobs"].values()
    return {step["name"]: step.get("run", "") for step in job["steps"] if "name" in step}


def test_the_workflow_runs_what_the_suite_runs() -> None:
    steps = _steps()
    assert "python -m build" in steps["Wheel and sdist"]
    assert (
        "cyclonedx-py environment"
        in steps["SBOM (CycloneDX) of an environment holding only the wheel"]
    )
    sbom = steps["SBOM (CycloneDX) of an environment holding only the wheel"]
    assert "scripts/sbom_root.py" in sbom and "--validate" in sbom  # metadata.component
    image = steps["Image"]
    assert '--build-arg REVISION="${GITHUB_SHA}"' in image and "--build-arg VERSION=" in image
    assert '["revision"]' in image  # the built image is asked which revision it is
    assert (
        "npm pack" in steps["TypeScript client"] and "npm run build" in steps["TypeScript client"]
    )
    assert "CHANGELOG.md" in steps["Version"]  # no release without its changelog section
    # the schemas' one copy, the package's (served at /schemas/, copied by `kneo init`)
    assert steps["JSON Schemas"].split() == ["cp", "kneo/schemas/*.schema.json", "dist/"]


def test_npm_pack_of_the_typescript_client(tmp_path: Path) -> None:
    modules = node_modules_for(CLIENT)
    work = tmp_path / "client"
    shutil.copytree(CLIENT, work, ignore=shutil.ignore_patterns("node_modules", "dist"))
    (work / "node_modules").symlink_to(modules, target_is_directory=True)
    npm = tool("npm")
    for command in (
        [tool("node"), str(modules / "typescript" / "bin" / "tsc"), "-p", "tsconfig.json"],
        [npm, "version", "--no-git-tag-version", "1.2.3-test"],
        [npm, "pack", "--json", "--pack-destination", str(tmp_path)],
    ):
        done = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (packed,) = json.loads(done.stdout)
    with tarfile.open(tmp_path / packed["filename"]) as tarball:
        names = set(tarball.getnames())
        manifest = json.load(tarball.extractfile("package/package.json"))  # type: ignore[arg-type]
    assert {"package/dist/index.js", "package/dist/index.d.ts"} <= names
    assert not any(n.startswith("package/src/") or "node_modules" in n for n in names)
    assert manifest["name"] == "@kneo/client" and manifest["version"] == "1.2.3-test"
