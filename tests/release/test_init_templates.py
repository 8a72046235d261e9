"""A new project is clean: from the wheel in a fresh virtual environment outside the checkout,
``kneo init`` of each template writes files that each validate against the schema their
modeline names (``check-jsonschema``, as an editor or CI would), specs that lint clean (an
overlay as the spec it overlays), specs that run with ``KNEO_SERV_REQUIRE_PROVIDER_SECRETS``
on and no provider's key, approvals assigned to a role that can decide them, and a workflow
actionlint passes.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kneo.cli.init_cmd import TEMPLATES
from kneo.service.grants import ROLE_SCOPES
from tests.e2e.test_readme import clean_env
from tests.release.wheel_build import Built, install_into_fresh_venv

MODELINE = re.compile(r"^# yaml-language-server: \$schema=(\S+)$", re.M)
#: ``check-jsonschema ARGS`` once per argument list, in one process: the command's own entry
#: point, but jsonschema and its format grammars load once (3 CPU-s a process, 30 a test).
CHECK_JSONSCHEMA = """
import json, sys
from check_jsonschema import main
failed = [a for a in json.loads(sys.argv[1]) if main(a, standalone_mode=False) != 0]
sys.exit(f"check-jsonschema failed: {failed}" if failed else 0)
"""


def _beside_python(name: str) -> str:
    """A command-line tool the dev extra installs beside this interpreter (else on PATH)."""
    found = Path(sys.executable).parent / name
    path = str(found) if found.is_file() else shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is missing: pip install -e '.[dev]'", pytrace=False)
    return str(path)


@pytest.fixture(scope="module")
def bin_dir(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel in a fresh virtual environment, one for every template (each gets its own
    project directory and HOME): its first run compiles Kneo's bytecode, the next reuse it."""
    return install_into_fresh_venv(built.wheel, tmp_path_factory.mktemp("venv"))


@pytest.mark.parametrize("template", TEMPLATES)
def test_every_file_kneo_init_writes_is_clean(bin_dir: Path, tmp_path: Path, template: str) -> None:
    work = tmp_path / "work"
    work.mkdir()
    env = clean_env(work, bin_dir)
    env.pop("PYTHONPATH", None)
    env.pop("KNEO_TEST_DATABASE_URL", None)
    env["KNEO_SERV_REQUIRE_PROVIDER_SECRETS"] = "true"  # and no provider's key is set
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GOOGLE_API_KEY", "AZURE_OPENAI_API_KEY"):
        env.pop(name, None)
    project = work / "demo"

    def kneo(*argv: str, code: int = 0) -> str:
        done = subprocess.run(
            [str(bin_dir / "kneo"), *argv],
            cwd=project if project.exists() else work,
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == code, (argv, done.stdout[-2000:], done.stderr[-2000:])
        return done.stdout + done.stderr

    kneo("init", "demo", "--template", template)
    written = [p for p in project.rglob("*") if p.is_file() and ".kneo/schemas" not in p.as_posix()]

    # every file with a modeline validates against the schema it names (one run per schema)
    by_schema: dict[Path, list[str]] = {}
    for path in written:
        found = MODELINE.search(path.read_text(errors="replace"))
        if found is not None:
            schema = (path.parent / found.group(1)).resolve()
            assert schema.is_file() and schema.is_relative_to(project), path
            by_schema.setdefault(schema, []).append(str(path))
    assert sum(len(files) for files in by_schema.values()) >= 8
    runs = [["--schemafile", str(schema), *files] for schema, files in by_schema.items()]
    done = subprocess.run(
        [sys.executable, "-c", CHECK_JSONSCHEMA, json.dumps(runs)],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr

    # every spec file lints clean, an overlay as the spec it overlays
    specs = sorted((project / "specs").glob("*.yaml"))
    assert any(p.name.count(".") == 2 for p in specs)  # the dev overlay is among them
    for spec in specs:
        out = kneo("spec", "lint", str(spec.relative_to(project)))
        assert "clean" in out, out

    # approvals go to someone who may decide them: a key named after a role with human:write
    for spec in specs:
        humans = (yaml.safe_load(spec.read_text()).get("components") or {}).get("humans") or {}
        for human in humans.values():
            assignee = human.get("assignee")
            assert assignee in ROLE_SCOPES and "human:write" in ROLE_SCOPES[assignee], spec

    # they run: offline on the dummy provider, with provider secrets required and none set
    paused = kneo("run", "specs/approval.yaml", "--input", "notes", "--target", "workflow",
                  "-o", "json", code=0)  # fmt: skip
    assert '"paused"' in paused, paused
    assert "succeeded" in kneo("run", "specs/assistant.yaml", "--env", "dev", "--input", "hi")
    kneo("eval", "run", "specs/assistant.yaml", "--env", "dev",
         "--suite", "evals/assistant.eval.yaml")  # fmt: skip
    # while the spec on a hosted model asks for its provider's key, by name, before it runs
    hosted = kneo("run", "specs/assistant.yaml", "--input", "hi", code=1)
    assert "provider_secret_missing" in hosted and "OPENAI_API_KEY" in hosted

    if template == "gitops":  # the spec repository's workflow passes actionlint
        subprocess.run(["git", "init", "-q"], cwd=project, check=True)
        done = subprocess.run(
            [_beside_python("actionlint"), ".github/workflows/kneo-specs.yml"],
            cwd=project, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
