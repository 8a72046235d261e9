"""docs/quickstart.md works as printed: ``kneo init``, local runs, the service with an
operator and a reviewer key, profiles, and a resume through the service.

A reader has only the installed package: ``kneo init demo`` makes the project the page then
works in. The page's steps before the service (install without its ``pip`` line, init,
validate, run, pause, resume: :func:`local_steps`) run from the built wheel in a fresh virtual
environment, in ``tests/release/test_wheel_journey.py``, the one place they run. Here the
service part runs in the project the page's ``kneo init demo`` makes: the block that starts
the service in the background ("in one terminal, in ``demo/``"), the blocks after it in
another shell ("in another terminal, also in ``demo/``").
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.e2e.doc_walk import (
    ROOT,
    blocks,
    blocks_of,
    free_port,
    reader_env,
    run_script,
    serving,
    with_port,
)

PAGE = ROOT / "docs" / "quickstart.md"


def _page() -> tuple[str, str, str, str]:
    """``(before, server, after, printed_403)``: the shell blocks around the service block
    and the page's ``text`` block showing the operator's refused resume."""
    found = blocks(PAGE)
    shell = [body for lang, body in found if lang == "bash"]
    texts = [body for lang, body in found if lang == "text"]
    server = next(i for i, body in enumerate(shell) if "kneo service serve" in body)
    install = [line for line in shell[0].splitlines() if line.startswith("python -m pip")]
    assert install, "the first block installs"
    assert "kneo init demo && cd demo" in shell[0].splitlines(), "the first block makes demo/"
    before = [shell[0].replace(install[0] + "\n", ""), *shell[1:server]]
    forbidden = next(t for t in texts if t.startswith("error[forbidden]"))
    return "\n".join(before), shell[server], "\n".join(shell[server + 1 :]), forbidden.strip()


def local_steps() -> str:
    """The page's steps before the service, as one script: install (without the ``pip`` line),
    ``kneo init demo && cd demo``, validate, run, pause and resume."""
    return _page()[0]


def check_local_steps(reader: Path, done: subprocess.CompletedProcess[str]) -> Path:
    """What :func:`local_steps` left in ``reader`` (where they ran) is right; the project."""
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Usage: kneo" in done.stdout
    project = reader / "demo"
    assert _json(project / "assistant.json")["status"] == "succeeded"
    assert _json(project / "approval.json")["status"] == "paused"
    assert "PUBLISHED: " in done.stdout  # approved: the project's function published
    return project


def _json(path: Path) -> dict[str, object]:
    loaded = json.loads(path.read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_quickstart_service_part_as_printed(tmp_path: Path) -> None:
    env = reader_env(tmp_path)
    _, server, after, printed_403 = _page()
    made = run_script("kneo init demo", tmp_path, env)  # the page's first step
    assert made.returncode == 0, made.stderr
    project = tmp_path / "demo"

    port = free_port()
    with serving(with_port(server, port), project, env, port) as log:
        remote = run_script(with_port(after, port), project, env)
        assert remote.returncode == 0, remote.stdout[-3000:] + remote.stderr[-3000:]
        audit = remote.stdout.split("audit events (", 1)[1]
        assert "human.decision   reviewer" in audit and "run.created      operator" in audit
        # the operator's key started the run; the reviewer's decided it, through the service
        final = run_script(
            'kneo runs get "$(python -c \'import json; print(json.load(open("profile_run.json"))'
            '["run_id"])\')" --profile local --json',
            project,
            env,
        )
        assert json.loads(final.stdout)["status"] == "succeeded", final.stderr
        # what the page prints for the operator's resume is what the CLI prints
        refused = run_script(
            with_port(
                "kneo run specs/approval.yaml --input x --json "
                "--service-url http://127.0.0.1:8000 > again.json\n"
                'CONT=$(python -c \'import json; print(json.load(open("again.json"))'
                '["continuation_id"])\')\n'
                'REQ=$(python -c \'import json; print(json.load(open("again.json"))'
                '["request_id"])\')\n'
                'kneo human resume "$CONT" --request-id "$REQ" --approve '
                "--service-url http://127.0.0.1:8000",
                port,
            ),
            project,
            {**env, "KNEO_SERV_API_KEY": "operator-token"},
        )
        assert refused.returncode == 1
        lines = refused.stderr.splitlines()
        assert lines[0] == printed_403
        assert lines[1].startswith(
            "hint: this key lacks human:write; send the command with a reviewer key"
        )
        assert "operator-token" not in refused.stderr + remote.stdout + remote.stderr
    served = log.read_text()
    assert "reviewer-token" not in served and "operator-token" not in served
    assert (
        f"kneo service on http://127.0.0.1:{port}: database sqlite:///"
        f"{project / '.kneo' / 'kneo_runs.sqlite'}; auth API keys (operator, reviewer); "
        f"console http://127.0.0.1:{port}/ui; worker on; controller off"
    ) in served


def test_readme_service_section_as_printed(tmp_path: Path) -> None:
    """README's "Through the service": the operator's profile starts the run, the reviewer's
    approves it, and deleting the operator's profile returns the CLI to local runs (which
    read the same SQLite file the service wrote, in this one-machine setup)."""
    section = (ROOT / "README.md").read_text().split("## Through the service", 1)[1]
    section = section.split("\n## ", 1)[0]
    server, client = [b for lang, b in blocks_of(section) if lang == "bash"]
    env = reader_env(tmp_path)
    made = run_script("kneo init demo", tmp_path, env)  # as the README's quickstart does
    assert made.returncode == 0, made.stderr
    project = tmp_path / "demo"
    port = free_port()
    with serving(with_port(server, port), project, env, port):
        walked = run_script(with_port(client, port), project, env)
        assert walked.returncode == 0, walked.stdout[-3000:] + walked.stderr[-3000:]
        assert "succeeded" in walked.stderr
    started = _json(project / "run.json")
    assert started["status"] == "paused"
    local = run_script(f"kneo runs get {started['run_id']} --json", project, env)
    assert json.loads(local.stdout)["status"] == "succeeded", local.stderr
