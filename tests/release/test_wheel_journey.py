"""The wheel is the product: built from the checkout, installed into a fresh virtual
environment without the checkout on the path, it runs the README quickstart and the first
steps of docs/quickstart.md (the seed tutorial's quickstart).

Both start with ``kneo init`` (the project templates ship in the wheel), run a workflow that
pauses for a person and resume it; the README's also signs a bundle: the migrations, the
schemas and the templates are all read from the installed package.
``tests/e2e/test_readme.py`` and ``tests/e2e/test_quickstart_doc.py`` hold the scripts; this
is the one place they run.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import re
import subprocess
import sys
import tarfile
import time
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.e2e.test_quickstart_doc import check_local_steps, local_steps
from tests.e2e.test_readme import clean_env, quickstart_script
from tests.release.wheel_build import ROOT, Built, install_into_fresh_venv

#: What an installed user needs besides the code, by a path inside the wheel.
PACKAGE_DATA = [
    "kneo/py.typed",
    "kneo/_version.py",
    "kneo/store/migrations/env.py",
    "kneo/store/migrations/script.py.mako",
    "kneo/schemas/spec.schema.json",
    "kneo/schemas/project_config.schema.json",
    "kneo/schemas/environment.schema.json",
    "kneo/schemas/bundle.schema.json",
    "kneo/schemas/eval_suite.schema.json",
    "kneo/console/templates/base.html",
    "kneo/templates/project/.kneo/config.yaml",
    "kneo/templates/project/project_functions.py.tmpl",
    "kneo/templates/gitops/.github/workflows/kneo-specs.yml",
    "kneo/templates/gitops/keys/.gitkeep",
]
#: What a build from Git says it is: the tag's version, or between tags the next version,
#: the commits since and the commit (setuptools-scm's guess-next-dev and node-and-date).
VERSION = re.compile(r"^\d+\.\d+(\.\d+)?((\.dev\d+)?\+g[0-9a-f]{7,}(\.d\d{8})?)?$")


def test_the_build_is_versioned_licensed_and_warns_nothing(built: Built) -> None:
    assert VERSION.match(built.version), built.version
    assert "unknown" not in built.version
    tags = subprocess.run(
        ["git", "tag", "--list", "v*", "--points-at", "HEAD"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    if tags:  # a tagged commit builds the tag's version and nothing more
        assert built.version == tags[0].removeprefix("v")
    else:  # untagged: 0.1.devN+g<hash> until the first tag
        assert re.match(r"^0\.1\.dev\d+\+g[0-9a-f]{7,}", built.version), built.version
    assert "Deprecat" not in built.log, [
        line for line in built.log.splitlines() if "eprecat" in line
    ]
    with zipfile.ZipFile(built.wheel) as wheel:
        info = f"kneo_platform-{built.version}.dist-info"
        metadata = Parser().parsestr(wheel.read(f"{info}/METADATA").decode())
        license_text = wheel.read(f"{info}/licenses/LICENSE").decode()
    assert metadata["License-Expression"] == "Apache-2.0"
    assert "Apache License" in license_text and "Version 2.0" in license_text
    assert license_text == (ROOT / "LICENSE").read_text()
    urls = dict(u.split(", ", 1) for u in metadata.get_all("Project-URL") or [])
    assert {"Homepage", "Source", "Documentation", "Issues", "Changelog"} <= set(urls), urls
    with tarfile.open(built.sdist) as sdist:
        assert f"kneo_platform-{built.version}/LICENSE" in sdist.getnames()


def runtime_dependencies() -> dict[str, importlib.metadata.Distribution]:
    """Kneo's runtime requirements (no extras) and theirs, as installed here, by name."""
    found: dict[str, importlib.metadata.Distribution] = {}
    todo = list(importlib.metadata.requires("kneo-platform") or [])
    while todo:
        requirement = Requirement(todo.pop())
        if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
            continue
        name = canonicalize_name(requirement.name)
        if name in found:
            continue
        try:
            found[name] = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue  # a platform's backport this interpreter does not need
        todo += found[name].requires or []
    return found


def _declares_license(dist: importlib.metadata.Distribution) -> bool:
    meta = dist.metadata
    return bool(
        meta.get("License-Expression")
        or (meta.get("License") or "").strip()
        or any(c.startswith("License ::") for c in meta.get_all("Classifier") or [])
    )


def test_the_wheel_holds_what_an_installed_user_needs(built: Built) -> None:
    names = set(zipfile.ZipFile(built.wheel).namelist())
    missing = [name for name in PACKAGE_DATA if name not in names]
    assert not missing, missing
    assert any(n.startswith("kneo/store/migrations/versions/") for n in names)
    assert any(n.startswith("kneo/console/static/") for n in names)
    assert not any(n.startswith(("tests/", "examples/", "docs/")) for n in names)
    with tarfile.open(built.sdist) as sdist:  # PKG-INFO: an sdist knows its version w/o Git
        root = sdist.getnames()[0].split("/")[0]
        info = sdist.extractfile(f"{root}/PKG-INFO")
        assert info is not None
        assert f"Version: {built.version}" in info.read().decode()


#: Builds, installs and walks the quickstart in fresh processes: 300 s (its build 48, the walk
#: 252) on a slow two-core machine under the suite's load, past the suite's hang guard.
@pytest.mark.timeout(900)
def test_readme_quickstart_from_the_installed_wheel(built: Built, tmp_path: Path) -> None:
    started = time.monotonic()
    bin_dir = install_into_fresh_venv(built.wheel, tmp_path / "venv")
    work = tmp_path / "work"
    work.mkdir()
    env = clean_env(work, bin_dir)
    env.pop("PYTHONPATH", None)
    env.pop("KNEO_TEST_DATABASE_URL", None)

    def run(*argv: str) -> str:
        done = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        return done.stdout

    where = run(str(bin_dir / "python"), "-c", "import kneo; print(kneo.__file__)")
    assert Path(where.strip()).is_relative_to(tmp_path / "venv"), where
    assert not Path(where.strip()).is_relative_to(ROOT)
    info = json.loads(run(str(bin_dir / "kneo"), "version", "-o", "json"))
    assert info["version"] == built.version
    assert info["revision"] not in ("", "unknown")  # the commit setuptools-scm recorded
    assert info["schema_revision"] == info["database"]["head"]

    result = subprocess.run(
        ["bash", "-c", quickstart_script()],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert json.loads((work / "demo" / "final.json").read_text())["status"] == "succeeded"
    assert (work / "demo" / ".kneo" / "kneo_runs.sqlite").is_file()  # migrated from the wheel
    assert "demo-signing-key" not in result.stdout + result.stderr
    # docs/quickstart.md up to the service, in a directory of its own (its `kneo init demo`)
    reader = tmp_path / "reader"
    reader.mkdir()
    walked = subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + local_steps()],
        cwd=reader, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    check_local_steps(reader, walked)
    # the release's SBOM step (release.yml) on this environment, without the borrowed
    # dependencies (the workflow installs them; here cyclonedx-py would walk the whole dev
    # environment for minutes): CycloneDX names the wheel, by the digest of the very file
    (venv_lib,) = (tmp_path / "venv" / "lib").glob("python3*/site-packages")
    (venv_lib / "_kneo_test_dependencies.pth").unlink()
    # ...but with the metadata of Kneo's runtime dependencies (their dist-info, linked), so
    # the SBOM lists them and their licenses as the release's, without walking the dev tools
    closure = runtime_dependencies()
    metadata_dir = tmp_path / "dependency-metadata"
    metadata_dir.mkdir()
    for dist in closure.values():
        found = Path(str(dist._path))  # type: ignore[attr-defined]
        (metadata_dir / found.name).symlink_to(found, target_is_directory=True)
    (venv_lib / "_kneo_dependency_metadata.pth").write_text(f"{metadata_dir}\n")
    sbom = tmp_path / "sbom.cdx.json"
    made = subprocess.run(
        [sys.executable, "-m", "cyclonedx_py", "environment", "--of", "JSON", "--no-validate",
         "-o", str(sbom), str(bin_dir / "python")],
        capture_output=True, text=True, timeout=180, cwd=work, env=env,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr[-2000:]
    rooted = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "sbom_root.py"), str(sbom)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert rooted.returncode == 0, rooted.stderr
    text = sbom.read_text()  # validated once, here, by the CycloneDX library's strict validator
    problems = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    assert problems is None, problems
    document = json.loads(text)
    assert document["bomFormat"] == "CycloneDX"
    root = document["metadata"]["component"]
    assert (root["name"], root["version"], root["type"]) == (
        "kneo-platform", built.version, "application",
    )  # fmt: skip
    assert [entry["license"]["id"] for entry in root["licenses"]] == ["Apache-2.0"]
    assert {"website", "documentation", "issue-tracker", "release-notes"} <= {
        ref["type"] for ref in root["externalReferences"]
    }  # the Project-URLs
    # the installed wheel is the root itself, not a second component beside it
    assert "kneo-platform" not in [c["name"] for c in document.get("components", [])]
    ours = root
    digest = hashlib.sha256(built.wheel.read_bytes()).hexdigest()
    hashes = [h["content"] for ref in ours["externalReferences"] for h in ref.get("hashes", [])]
    assert digest in hashes
    # third-party licenses: every runtime dependency is listed, with the license it declares
    listed = {canonicalize_name(c["name"]): c for c in document.get("components", [])}
    assert set(closure) <= set(listed), sorted(set(closure) - set(listed))
    declaring = [name for name, dist in closure.items() if _declares_license(dist)]
    assert len(declaring) > 20
    unlicensed = [name for name in declaring if not listed[name].get("licenses")]
    assert not unlicensed, unlicensed
    print(f"install + quickstarts + SBOM from the wheel: {time.monotonic() - started:.1f} s")
