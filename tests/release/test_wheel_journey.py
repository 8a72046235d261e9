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
import json
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

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
    sbom = tmp_path / "sbom.cdx.json"
    made = subprocess.run(
        [sys.executable, "-m", "cyclonedx_py", "environment", "--of", "JSON", "-o", str(sbom),
         str(bin_dir / "python")],
        capture_output=True, text=True, timeout=180, cwd=work, env=env,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr[-2000:]
    document = json.loads(sbom.read_text())
    assert document["bomFormat"] == "CycloneDX"
    (ours,) = [c for c in document["components"] if c["name"] == "kneo-platform"]
    assert ours["version"] == built.version
    digest = hashlib.sha256(built.wheel.read_bytes()).hexdigest()
    hashes = [h["content"] for ref in ours["externalReferences"] for h in ref.get("hashes", [])]
    assert digest in hashes
    print(f"install + quickstarts + SBOM from the wheel: {time.monotonic() - started:.1f} s")
