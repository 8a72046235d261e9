"""``-o json|yaml|table`` on every command that has ``--json``: each one is run with
``-o yaml`` in a real project (SQLite store, Git repository for the controller, a local
notification receiver) and its output is parsed by PyYAML; where a command only reads, its
YAML is the same document as its ``--json``. ``controller run`` (a loop) prints a YAML
stream, one document per reconcile, read with ``yaml.safe_load_all``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml

from kneo.cli.main import app
from kneo.cli.output import run_cli
from tests.cli_zygote import KNEO
from tests.controller.gitops_fixtures import ENV_FILES, Keys, Repo
from tests.notifications.receiver import Receiver

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "examples" / "smoke_human_workflow.yaml"
SIGNING_SECRET = "cli-output-signing-secret-0123"


def commands_with_json() -> dict[str, Any]:
    """``"runs list"`` -> its click command, for every command taking ``--json``."""
    found: dict[str, Any] = {}

    def walk(command: Any, path: list[str], ctx: Any) -> None:
        if hasattr(command, "list_commands"):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                walk(sub, [*path, name], sub.context_class(sub, parent=ctx))
        elif any("--json" in p.opts for p in command.params):
            found[" ".join(path)] = command

    root = typer.main.get_command(app)
    walk(root, [], root.context_class(root))
    return found


@dataclass
class Case:
    """One command line; ``{name}`` placeholders come from what earlier cases saw."""

    args: str
    code: int = 0
    envelope: bool = False  # it fails, printing the error envelope
    reads_only: bool = False
    keep: Callable[[Any], dict[str, str]] = field(default=lambda _doc: {})


CASES = [
    Case("config show", reads_only=True),
    Case("config resolve", reads_only=True),
    Case("config secrets", reads_only=True),
    Case("config check-env --env-file {env_file} --shape compose", code=1, reads_only=True),
    Case("spec validate {spec}", reads_only=True),
    Case("spec lint {spec}", reads_only=True),
    Case("spec compile {spec}", reads_only=True),
    Case("spec policy-report {spec}", reads_only=True),
    Case("spec migrate {spec}", reads_only=True),
    Case("spec explain {spec}", reads_only=True),
    Case("spec skills {spec}", reads_only=True),
    Case("version", reads_only=True),
    Case("policy preview dev {policy_file}", reads_only=True),
    Case("spec bundle sign {spec} -o {bundle_file} --approved-by ci --env dev"),
    Case("spec bundle verify {bundle_file}", reads_only=True),
    Case("keys generate release --output-dir {keyring}"),
    Case("keys list {keyring}", reads_only=True),
    Case("run {spec} --input hello", keep=lambda d: {"run": d["run_id"]}),
    Case("runs get {run}", reads_only=True),
    Case("runs list", reads_only=True),
    Case("runs trace {run}", reads_only=True),
    Case("runs checkpoints {run}", reads_only=True),
    Case("runs checkpoint-diff {run}", reads_only=True),
    Case("runs replay {run}", reads_only=True),
    Case("runs recovery {run}", reads_only=True),
    Case(
        "human list",
        reads_only=True,
        keep=lambda d: {
            "cid": d["tasks"][0]["continuation_id"],
            "req": d["tasks"][0]["requests"][0]["request_id"],
        },
    ),
    Case("human get {cid}", reads_only=True),
    Case("human replay {run}"),  # a new run from the same input
    Case("human resume {cid} --request-id {req} --approve --actor ci"),
    Case("projects create team-q"),
    Case("projects list", reads_only=True),
    Case("projects get team-q", reads_only=True),
    Case("projects update team-q --clear"),
    Case("projects archive team-q"),
    Case("audit list", reads_only=True, keep=lambda d: {"event": d["events"][0]["id"]}),
    Case("audit get {event}", reads_only=True),
    Case("reset --dry-run"),  # the database's size may change between two reads
    Case("runs continue {run}", code=1, envelope=True),  # a finished run cannot continue
    Case("run {spec} --input again", keep=lambda d: {"run2": d["run_id"]}),
    Case("runs cancel {run2}"),
    Case("controller plan"),  # reads only, but its timings differ run to run
    Case("controller reconcile --once"),
    Case("controller status", reads_only=True),
    Case("controller suspend helper --env dev"),
    Case("controller resume helper --env dev"),
    Case("registry list", reads_only=True),
    Case("registry get helper --env dev", reads_only=True),
    Case("registry history helper --env dev", reads_only=True),
    Case("registry diff helper --env dev --from 1 --to 1", reads_only=True),
    Case("registry pin helper --env dev --reason hold"),
    Case("registry unpin helper --env dev"),
    Case("registry rollback helper --env dev --to r1", code=1, envelope=True),  # active
    Case(
        "registry block sha256:1111111111111111111111111111111111111111111111111111111111111111 --reason bad"
    ),
    Case("registry blocks", reads_only=True),
    Case("schedules list", reads_only=True),
    Case("rollout status", reads_only=True),
    # no rollout of that id: each names it not_found, in the envelope
    Case("rollout status ro_none", code=1, envelope=True, reads_only=True),
    Case("rollout promote ro_none --actor ci", code=1, envelope=True),
    Case("rollout abort ro_none --reason bad --actor ci", code=1, envelope=True),
    Case("rollout retry ro_none --actor ci", code=1, envelope=True),
    # helper declares no schedule: each names it not_found, in the envelope
    Case("schedules get helper tick --env dev", code=1, envelope=True, reads_only=True),
    Case("schedules pause helper tick --env dev", code=1, envelope=True),
    Case("schedules resume helper tick --env dev", code=1, envelope=True),
    Case("schedules trigger helper tick --env dev", code=1, envelope=True),
    Case(
        "registry unblock sha256:1111111111111111111111111111111111111111111111111111111111111111"
    ),
    Case("notifications test hook"),
    Case("notifications list", reads_only=True),
    Case("notifications check", reads_only=True),
    Case("notifications retry"),
    Case("db upgrade"),
    Case("db current", reads_only=True),
    Case("db doctor", reads_only=True),
    Case("eval run {eval_spec} --suite {eval_suite} --env dev --workers 1 --results {eval_result}"),
    Case("spec bundle sign {eval_spec} -o {eval_bundle} --approved-by ci --env dev"),
    Case("eval sign --bundle {eval_bundle} --evals {eval_result} --recorded-by ci"),
    Case("policy sign prod --repo {policy_repo} --approved-by ci"),
    Case("maintenance prune --dry-run", reads_only=True),
    Case("maintenance backup {backup}"),
    Case("maintenance restore {backup} --to {restored}"),
    Case(  # an issuer that does not answer: the envelope, nothing stored
        "config profile login sso --service-url http://127.0.0.1:9 --issuer http://127.0.0.1:9"
        " --client-id kneo-cli",
        code=1,
        envelope=True,
    ),
    # last: an active profile sends the commands above to its service
    Case("config profile set staging --service-url http://127.0.0.1:9 --no-activate"),
    Case("config profile use staging"),
    Case("config profile list", reads_only=True),
    Case("config profile show", reads_only=True),
]
#: Commands run as a process instead (they do not return): see the stream test below.
STREAMING = {"controller run"}


@dataclass
class Project:
    root: Path
    env: dict[str, str]
    values: dict[str, str]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    """A project dir with a controller repository, a notification receiver and a store."""
    repo, keys = Repo(tmp_path / "git"), Keys(tmp_path / "keys")
    for name, text in ENV_FILES.items():
        repo.write(f"environments/{name}.yaml", text)
    repo.write("bundles/helper/dev.json", keys.bundle("helper", "dev"))
    repo.commit("helper r1")
    receiver = Receiver().start()
    root = tmp_path / "project"
    (root / ".kneo").mkdir(parents=True)
    (root / ".kneo" / "config.yaml").write_text(
        "version: v1\ncontroller:\n"
        f"  repo: {repo.url}\n  branch: main\n  trusted_keys: {keys.trusted_dir}\n"
        f"  cache_dir: {tmp_path / 'cache'}\n"
        f"notifications:\n  receivers:\n    - name: hook\n      url: {receiver.url}\n"
    )
    (tmp_path / "prod.env").write_text("KNEO_SERV_AUTH_ENABLED=false\n")
    env = {
        "KNEO_SERV_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite'}",
        "KNEO_SERV_PROFILES_PATH": str(tmp_path / "profiles.json"),
        "KNEO_SERV_SPEC_SIGNING_KEY": SIGNING_SECRET,
    }
    for name in [k for k in os.environ if k.startswith("KNEO_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(root)
    policy_file = tmp_path / "proposed-policy.json"
    policy_file.write_text('{"require_guardrails": true}')
    values = {
        "spec": str(SMOKE),
        "eval_spec": str(REPO / "examples" / "research_agent.yaml"),
        "eval_suite": str(REPO / "examples" / "evals" / "research_agent.eval.yaml"),
        "eval_result": str(tmp_path / "research.result.json"),
        "eval_bundle": str(tmp_path / "bundles" / "research" / "dev.json"),
        "policy_repo": str(repo.work),
        "policy_file": str(policy_file),
        "env_file": str(tmp_path / "prod.env"),
        "bundle_file": str(tmp_path / "smoke.bundle.json"),
        "keyring": str(tmp_path / "keyring"),
        "backup": str(tmp_path / "backup.sqlite"),
        "restored": str(tmp_path / "restored.sqlite"),
    }
    yield Project(root, env, values)
    receiver.stop()


def _invoke(
    args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", ["kneo", *args])
    code = run_cli(app)
    return code, capsys.readouterr().out


def test_every_command_with_json_has_a_case_and_an_output_format() -> None:
    commands = commands_with_json()
    assert len(commands) > 40, sorted(commands)
    named = {c: [case for case in CASES if (case.args + " ").startswith(c + " ")] for c in commands}
    assert not [c for c, cases in named.items() if not cases and c not in STREAMING]
    for name, command in commands.items():
        flags = {o for p in command.params for o in p.opts}
        assert {"-o", "--output"} <= flags or "--output-format" in flags, name


def test_yaml_output_of_every_command_parses(
    project: Project, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    failures = []
    for case in CASES:
        try:
            args = case.args.format(**project.values).split()
        except KeyError as missing:
            failures.append(f"{case.args}: no {missing} (an earlier case failed)")
            continue
        writes_a_file = args[:2] in (["spec", "migrate"], ["eval", "sign"]) or args[:3] == [
            "spec",
            "bundle",
            "sign",
        ]
        fmt = "--output-format" if writes_a_file else "-o"
        code, out = _invoke([*args, fmt, "yaml"], monkeypatch, capsys)
        try:
            doc = yaml.safe_load(out)
        except yaml.YAMLError as exc:
            failures.append(f"{case.args}: not YAML ({exc}): {out[:300]}")
            continue
        if code != case.code or not isinstance(doc, dict):
            failures.append(f"{case.args}: exit {code}, {out[:300]}")
            continue
        if case.envelope != (isinstance(doc.get("error"), str) and "message" in doc):
            failures.append(f"{case.args}: error envelope expected: {case.envelope}: {doc}")
        project.values.update(case.keep(doc))
        if case.reads_only:
            code, out = _invoke([*args, "--json"], monkeypatch, capsys)
            if json.loads(out) != doc:
                failures.append(f"{case.args}: -o yaml and --json differ:\n{doc}\n{out}")
    assert not failures, "\n".join(failures)


def test_table_is_the_default_and_json_conflicts_with_yaml(
    project: Project, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, table = _invoke(["runs", "list", "-o", "table"], monkeypatch, capsys)
    assert code == 0 and table == _invoke(["runs", "list"], monkeypatch, capsys)[1]
    assert not isinstance(yaml.safe_load(table), dict)
    assert _invoke(["runs", "list", "--json", "-o", "yaml"], monkeypatch, capsys)[0] == 2
    assert _invoke(["runs", "list", "-o", "xml"], monkeypatch, capsys)[0] == 2
    code, out = _invoke(["runs", "get", "run_missing", "-o", "yaml"], monkeypatch, capsys)
    assert code == 1 and yaml.safe_load(out)["error"] == "not_found"


def test_controller_run_prints_a_yaml_stream(project: Project) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("KNEO_")}
    environ.update(project.env, PYTHONPATH=str(REPO))
    args = [*KNEO, "controller", "run", "--interval", "0.2"]
    proc = subprocess.Popen(
        [*args, "-o", "yaml"], cwd=project.root, env=environ, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while sum(line == "---\n" for line in lines) < 3 and time.monotonic() < deadline:
            lines.append(proc.stdout.readline())
    finally:
        proc.send_signal(signal.SIGTERM)
        rest = proc.stdout.read() if proc.stdout is not None else ""  # what it still wrote
        proc.wait(timeout=30)
    text = "".join(lines) + rest
    docs = list(yaml.safe_load_all(text))
    assert len(docs) >= 2, text
    assert all(isinstance(d, dict) and "ok" in d for d in docs), text
    assert docs[0]["counts"] == {"activate": 1}
