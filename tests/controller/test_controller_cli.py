"""``kneo controller ...`` and ``kneo registry ...`` against a real Git repository and SQLite.

In-process through :func:`kneo.cli.output.run_cli`, the ``kneo`` script's own entry point
(errors become one line and an exit code): the project directory holds
``.kneo/config.yaml`` with the ``controller:`` block, the store is the one
``KNEO_SERV_DATABASE_URL`` names.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from gitops_fixtures import ENV_FILES, SIGNED_AT, Keys, Repo, spec

from kneo.bundle import BundleSource, dump_bundle
from kneo.bundle.keys import SigningKey
from kneo.bundle.sign import sign_bundle
from kneo.cli.main import app
from kneo.cli.output import run_cli

HMAC_SECRET = "hmac-secret-value-do-not-print"
SOURCE = BundleSource(path="specs/hashed.yaml")


@pytest.fixture
def cli(
    repo: Repo,
    keys: Keys,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Any:
    project = tmp_path / "project"
    (project / ".kneo").mkdir(parents=True)
    (project / ".kneo" / "config.yaml").write_text(
        "version: v1\ncontroller:\n"
        f"  repo: {repo.url}\n  branch: main\n  trusted_keys: {keys.trusted_dir}\n"
        f"  cache_dir: {tmp_path / 'cache'}\n"
    )
    monkeypatch.chdir(project)
    for name in ("KNEO_SERV_DATABASE_URL", "KNEO_CI_HMAC", "KNEO_SERV_SERVICE_URL", "KNEO_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KNEO_SERV_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.sqlite'}")
    monkeypatch.setenv("KNEO_SERV_PROFILES_PATH", str(tmp_path / "profiles.json"))

    def invoke(*args: str, code: int = 0) -> Any:
        capsys.readouterr()
        monkeypatch.setattr(sys, "argv", ["kneo", *args])
        exit_code = run_cli(app)
        out, err = capsys.readouterr()
        assert exit_code == code, (args, out, err)
        if "--json" in args and code == 0:
            return json.loads(out)
        return out + err

    return invoke


def test_reconcile_status_and_registry_commands(cli: Any, repo: Repo, keys: Keys) -> None:
    repo.write("bundles/helper/dev.json", keys.bundle("helper", "dev", spec("first")))
    first = repo.commit("helper r1")

    planned = cli("controller", "plan", "--json")
    assert planned["dry_run"] and planned["counts"] == {"activate": 1}
    assert cli("registry", "list", "--json")["items"] == []  # a plan writes nothing

    done = cli("controller", "reconcile", "--once", "--json")
    assert done["ok"] and done["commit"] == first and done["counts"] == {"activate": 1}
    assert [a["action"] for a in done["actions"]] == ["activate"]
    noop = cli("controller", "reconcile", "--json")  # nothing changed: nothing planned
    assert noop["actions"] == [] and noop["stats"]["mode"] == "incremental"
    full = cli("controller", "reconcile", "--full", "--json")
    assert full["stats"]["full_reason"] == "requested"
    assert [(a["action"], a["applied"]) for a in full["actions"]] == [("noop", False)]

    status = cli("controller", "status", "--json")
    assert status["last_fetched_commit"] == first and status["last_error"] is None
    listed = cli("registry", "list", "--env", "dev", "--json")["items"]
    assert [(r["bundle"], r["revision"], r["ready"]) for r in listed] == [("helper", 1, "True")]

    repo.write("bundles/helper/dev.json", keys.bundle("helper", "dev", spec("second")))
    repo.commit("helper r2")
    text = cli("controller", "reconcile")
    assert "activate" in text and "helper@dev r2" in text
    got = cli("registry", "get", "helper", "--env", "dev", "--json")
    assert got["active"]["revision"] == 2
    assert {c["type"]: c["status"] for c in got["conditions"]} == {
        "Verified": "True",
        "Promoted": "True",
        "Ready": "True",
    }
    history = cli("registry", "history", "helper", "--env", "dev", "--json")["items"]
    assert [(r["revision"], r["status"]) for r in history] == [(2, "active"), (1, "inactive")]
    diff = cli("registry", "diff", "helper", "--env", "dev", "--from", "1", "--to", "2")
    assert '-    "system_prompt": "first"' in diff and '+    "system_prompt": "second"' in diff

    assert cli("controller", "suspend", "helper", "--env", "dev", "--json")["suspended"]
    assert cli("controller", "resume", "helper", "--env", "dev", "--json")["changed"] is True


def test_day_two_commands_roll_back_pin_and_block(cli: Any, repo: Repo, keys: Keys) -> None:
    for prompt in ("good", "bad"):
        repo.write("bundles/helper/dev.json", keys.bundle("helper", "dev", spec(prompt)))
        repo.commit(prompt)
        cli("controller", "reconcile", "--json")
    args = ("helper", "--env", "dev")
    suspended = cli("controller", "suspend", *args, "--actor", "erin", "--json")
    assert suspended["suspended_by"] == "erin"
    cli("controller", "resume", *args, "--actor", "erin")

    done = cli(
        "registry", "rollback", *args, "--to", "r1", "--reason", "5xx", "--actor", "dan", "--json"
    )
    assert (done["status"], done["revision"], done["pin"]["pinned_by"]) == ("rolled_back", 3, "dan")
    text = cli("registry", "get", *args)
    assert "pinned to revision 3 by dan: rollback to revision 1 by dan: 5xx" in text
    cli("controller", "reconcile", "--json")
    got = cli("registry", "get", *args, "--json")
    assert got["active"]["revision"] == 3 and got["pin"]["revision"] == 3
    assert {c["type"]: c["reason"] for c in got["conditions"]}["Promoted"] == "Pinned"
    assert cli("registry", "unpin", *args, "--json")["changed"] is True
    assert cli("registry", "pin", *args, "--reason", "freeze", "--json")["pin"]["revision"] == 3

    bad = got["active"]["digest"]
    blocked = cli("registry", "block", bad, "--reason", "leaks", "--actor", "sec", "--json")
    assert blocked["blocked_by"] == "sec"
    assert [b["digest"] for b in cli("registry", "blocks", "--json")["items"]] == [bad]
    assert cli("registry", "unblock", bad, "--json")["changed"] is True

    out = cli("registry", "rollback", *args, "--to", "latest", "--json", code=1)
    assert "invalid_request" in out and "--to" in out and "Traceback" not in out
    out = cli("registry", "rollback", *args, "--to", "9", "--json", code=1)
    assert "not_found" in out
    out = cli("registry", "block", "sha256:zz", "--reason", "x", "--json", code=1)
    assert "invalid_request" in out


def test_bad_input_is_one_line_with_a_stable_code(cli: Any, tmp_path: Path) -> None:
    out = cli("registry", "get", "nope", "--env", "dev", "--json", code=1)
    assert "not_found" in out
    out = cli("controller", "reconcile", "--repo", str(tmp_path / "missing"), "--json", code=1)
    assert "source_" in out and "Traceback" not in out
    out = cli("controller", "reconcile", "--trusted-hmac-key-env", "ci-hmac", code=1)
    assert "config_error" in out and "KEY_ID=VARIABLE" in out
    out = cli("controller", "reconcile", "--trusted-hmac-key-env", "ci-hmac=KNEO_CI_HMAC", code=1)
    assert "config_error" in out and "KNEO_CI_HMAC is not set" in out


def test_hmac_trusted_key_from_a_variable(
    cli: Any, repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    signing = SigningKey.hmac("ci-hmac", HMAC_SECRET)
    bundle = sign_bundle(
        spec("hmac"),
        signing,
        name="hashed",
        environment="dev",
        approved_by="ci",
        approved_at=SIGNED_AT,
        source=SOURCE,
    )
    repo.write("bundles/hashed/dev.json", dump_bundle(bundle))
    repo.commit("hmac-signed bundle")
    # without the HMAC key the bundle is rejected (unknown key)...
    rejected = cli("controller", "reconcile", "--json")
    assert rejected["counts"] == {"reject": 1}
    # ...with it (secret read by variable name, never printed) a fixed bundle activates
    monkeypatch.setenv("KNEO_CI_HMAC", HMAC_SECRET)
    bundle = sign_bundle(
        spec("hmac v2"),
        signing,
        name="hashed",
        environment="dev",
        approved_by="ci",
        approved_at=SIGNED_AT,
        source=SOURCE,
    )
    repo.write("bundles/hashed/dev.json", dump_bundle(bundle))
    repo.commit("hmac-signed bundle v2")
    done = cli("controller", "reconcile", "--trusted-hmac-key-env", "ci-hmac=KNEO_CI_HMAC")
    assert "activate" in done and HMAC_SECRET not in done
    active = cli("registry", "get", "hashed", "--env", "dev", "--json")["active"]
    assert active["signer_key_ids"] == ["ci-hmac"]


def test_promotion_task_in_kneo_human_list_and_resume(cli: Any, repo: Repo, keys: Keys) -> None:
    repo.write(
        "environments/prod.yaml",
        "version: v1\npromotion:\n  require_human_approval: true\n"
        "  approvers: [alice, bob]\n  min_approvals: 2\n",
    )
    repo.write("bundles/helper/prod.json", keys.bundle("helper", "prod", spec("prod")))
    repo.commit("helper for prod")
    assert cli("controller", "reconcile", "--json")["counts"] == {"wait_for_approval": 1}

    listed = cli("human", "list", "--json")
    (task,) = [t for t in listed["tasks"] if t["run_id"] is None]
    (request,) = task["requests"]
    assert request["prompt"].startswith("Promote helper@sha256:") and "prod" in request["prompt"]
    cont, req = task["continuation_id"], request["request_id"]

    refused = cli(
        "human",
        "resume",
        cont,
        "--request-id",
        req,
        "--approve",
        "--actor",
        "mallory",
        "--json",
        code=1,
    )
    assert "not_an_approver" in refused
    first = cli(
        "human", "resume", cont, "--request-id", req, "--approve", "--actor", "alice", "--json"
    )
    assert first["status"] == "pending_approval" and first["run_id"] is None
    text = cli("human", "resume", cont, "--request-id", req, "--approve", "--actor", "bob")
    assert "promotion approved" in text and "2/2" in text
    assert cli("controller", "reconcile", "--json")["counts"] == {"activate": 1}
    active = cli("registry", "get", "helper", "--env", "prod", "--json")["active"]
    assert {"alice", "bob"} <= set(active["approved_by"])


def test_the_projects_own_bundles_reconcile_with_no_rejection(
    repo: Repo,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Every bundle the project's CI lints and signs reconciles: the controller checks specs
    against the project's tool registry (built-in tools and ``tool_registry``), as
    ``kneo spec lint`` does, not an empty one (which rejected 8 of 39 with E_UNKNOWN_TOOL)."""
    import shutil

    root = Path(__file__).resolve().parents[2]
    # the bundles, their environments and the project code the bundles pin (examples/*.py)
    for folder in ("bundles", "environments", "examples"):
        shutil.copytree(root / folder, repo.work / folder, dirs_exist_ok=True)
    repo.write(".kneo/config.yaml", (root / ".kneo" / "config.yaml").read_text())
    repo.commit("the project's own bundles")
    monkeypatch.chdir(root)  # the project the controller runs in: its tool registry
    monkeypatch.delenv("KNEO_SERV_SERVICE_URL", raising=False)
    monkeypatch.setenv("KNEO_SERV_DATABASE_URL", f"sqlite:///{tmp_path / 'own.sqlite'}")
    args = ["kneo", "controller", "reconcile", "--repo", repo.url, "--branch", "main"]
    args += ["--trusted-keys", str(root / "examples" / "keys")]
    args += ["--cache-dir", str(tmp_path / "cache"), "--json"]
    monkeypatch.setattr(sys, "argv", args)
    capsys.readouterr()
    assert run_cli(app) == 0
    result = json.loads(capsys.readouterr().out)
    shipped = len(list((root / "bundles").glob("*/*.json")))
    assert result["ok"] and result["problems"] == [], result["problems"]
    assert "reject" not in result["counts"]
    assert sum(result["counts"].values()) == shipped
    # the rest waits for a person (prod approvals) or for the environment it promotes from
    assert set(result["counts"]) <= {"activate", "wait_for_approval", "wait_for_upstream"}


def test_plan_of_a_pull_request_lists_each_environment_and_exits_1_when_refused(
    cli: Any, repo: Repo, keys: Keys
) -> None:
    """A branch changing two bundles in three environments: one markdown section per
    environment, upstream first, with diffs, verdicts and approvals; a block makes it 1."""
    for name in ("helper", "mailer"):
        for env in ("dev", "staging", "prod"):
            repo.write(f"bundles/{name}/{env}.json", keys.bundle(name, env, spec(f"{name} v1")))
    base = repo.commit("v1")
    repo.git("checkout", "--quiet", "-b", "feature")
    for name in ("helper", "mailer"):
        for env in ("dev", "staging", "prod"):
            repo.write(f"bundles/{name}/{env}.json", keys.bundle(name, env, spec(f"{name} v2")))
    repo.commit("v2", push=False)
    work = str(repo.work)

    text = cli("controller", "plan", "--repo", work, "--base", "main", "--head", "feature")
    assert text.startswith("<!-- kneo-plan -->\n## Kneo plan: `" + base[:12])
    assert "Compared with the base commit: **6 change(s)**, **0 refused**." in text
    sections = [line for line in text.splitlines() if line.startswith("### ")]
    assert sections == ["### dev", "### staging", "### prod"]
    prod = text.split("### prod")[1]
    assert "| `helper` | ⏳ needs approval |" in prod and "1 of alice, bob, carol" in prod
    assert "active in staging first" in prod
    dev = text.split("### dev")[1].split("### staging")[0]
    assert dev.count("✅ promotes") == 2 and "signed by ci" in dev
    assert (
        '  -    "system_prompt": "helper v1"' in dev
        and '  +    "system_prompt": "helper v2"' in dev
    )

    data = json.loads(
        cli(
            "controller",
            "plan",
            "--repo",
            work,
            "--base",
            "main",
            "--head",
            "feature",
            "--format",
            "json",
        )
    )
    assert (data["against"], data["changes"], data["refused"]) == ("base", 6, 0)
    assert [e["environment"] for e in data["environments"]] == ["dev", "staging", "prod"]
    approvals = data["environments"][2]["bundles"][0]["approvals"]
    assert approvals == {
        "required": True,
        "approvers": ["alice", "bob", "carol"],
        "min_approvals": 1,
        "upstream": "staging",
    }

    # the registry now holds v1 everywhere but prod, and v2 of mailer is blocked
    cli("controller", "reconcile", "--repo", work, "--branch", "main", "--json")
    mailer_v2 = data["environments"][0]["bundles"][1]["to"]
    cli("registry", "block", mailer_v2, "--reason", "leaks the prompt", "--json")
    refused = cli(
        "controller", "plan", "--repo", work, "--base", "main", "--head", "feature", code=1
    )
    assert "Compared with the registry" in refused and "**3 refused**" in refused  # 3 envs
    assert "| `mailer` | ⛔ refused |" in refused
    assert "blocked by" in refused and "leaks the prompt" in refused

    # a freeze in prod's policy on the branch: prod's promotions are refused (policy), exit 1
    cli("registry", "unblock", mailer_v2, "--json")
    repo.write(
        "environments/prod.yaml",
        ENV_FILES["prod"].replace(
            "promotion:\n",
            "promotion:\n  freeze: [{reason: code freeze, from: 2020-01-01T00:00:00Z}]\n",
        ),
    )
    repo.commit("freeze prod", push=False)
    frozen = json.loads(
        cli(
            "controller", "plan", "--repo", work, "--base", "main", "--head", "feature",
            "--format", "json", code=1,
        )
    )  # fmt: skip
    prod = frozen["environments"][2]
    assert (prod["environment"], frozen["refused"]) == ("prod", 2)
    assert {(b["bundle"], b["action"], b["reason"]) for b in prod["bundles"]} == {
        ("helper", "refuse", "frozen"),
        ("mailer", "refuse", "frozen"),
    }
    assert "prod is frozen: code freeze" in prod["bundles"][0]["message"]

    out = cli("controller", "plan", "--repo", work, "--base", "main", code=1)
    assert "--base and --head go together" in out
    out = cli("controller", "plan", "--repo", work, "--base", "main", "--head", "nope", code=1)
    assert "source_ref_not_found" in out and "Traceback" not in out


def test_plan_lists_each_policy_change_and_exits_1_when_one_would_be_held(
    cli: Any, repo: Repo, keys: Keys
) -> None:
    """A pull request that loosens prod: the plan says which gates, what the change needs
    (as prod's policy in force demands) and exits 1; signed as demanded it takes effect,
    and a tightening takes effect at once."""
    strict = ENV_FILES["prod"] + "required_signatures: 2\n"
    repo.write("environments/prod.yaml", strict)
    repo.commit("prod needs two keys")
    work = str(repo.work)
    repo.git("checkout", "--quiet", "-b", "loosen")
    repo.write(
        "environments/prod.yaml", ENV_FILES["prod"].replace("  require_human_approval: true\n", "")
    )
    repo.write("bundles/helper/prod.json", keys.bundle("helper", "prod", spec("one key")))
    repo.commit("loosen prod", push=False)

    text = cli("controller", "plan", "--repo", work, "--base", "main", "--head", "loosen", code=1)
    policy = text.split("### Policy changes")[1].split("### ")[0]
    assert (
        "| `prod` | ⛔ held | required_signatures 2 → 1, require_human_approval removed |" in policy
    )
    assert "2 signature(s); 1 of alice, bob, carol approving" in policy
    assert "kneo policy sign" in policy
    data = json.loads(
        cli("controller", "plan", "--repo", work, "--base", "main", "--head", "loosen",
            "--format", "json", code=1)
    )  # fmt: skip
    assert data["policy_against"] == "base" and data["refused"] >= 1
    [prod] = data["policies"]
    assert prod["state"] == "held" and prod["needs"]["signatures"] == 2
    # the bundle of the same commit is judged by prod's policy in force: two signatures
    [item] = [b for e in data["environments"] for b in e["bundles"] if b["bundle"] == "helper"]
    assert item["action"] == "reject" and "needs 2 signatures" in item["message"]

    repo.git("checkout", "--quiet", "main")
    repo.git("checkout", "--quiet", "-b", "tighten")
    repo.write(
        "environments/prod.yaml",
        strict.replace("promotion:\n", "promotion:\n  refuse_downgrade: true\n"),
    )
    repo.commit("tighten prod", push=False)
    text = cli("controller", "plan", "--repo", work, "--base", "main", "--head", "tighten")
    assert "| `prod` | ✅ takes effect | — | refuse_downgrade added | — |" in text


def test_status_in_a_project_shows_that_projects_source(
    cli: Any, repo: Repo, keys: Keys, tmp_path: Path
) -> None:
    """``--project`` on the local store: the project's source is its definition's, not this
    directory's block; a project without one is not configured."""
    from kneo.store import open_store

    other = Repo(tmp_path / "other")
    store = open_store(f"sqlite:///{tmp_path / 'cli.sqlite'}")
    try:
        block = {"repo": other.url, "trusted_keys": str(keys.trusted_dir), "name": "theirs"}
        store.projects.create_project("team-x", definition={"controller": block})
        store.projects.create_project("team-y")
    finally:
        store.close()
    status = cli("controller", "status", "--project", "team-x", "--json")
    assert status["configured"] is True and status["name"] == "theirs"
    assert status["source"] == other.url and status["last_fetched_commit"] is None
    bare = cli("controller", "status", "--project", "team-y", "--json")
    assert bare["configured"] is False and bare["source"] is None
    host = cli("controller", "status", "--json")
    assert host["configured"] is True and host["source"] == repo.url


def test_a_held_removal_shows_in_status_registry_and_plan(cli: Any, repo: Repo, keys: Keys) -> None:
    """prod asks two signatures: deleting its bundle file prunes nothing, and every
    command that shows the controller or the registry says so (issue 70)."""
    repo.write(
        "environments/prod.yaml",
        "version: v1\nrequired_signatures: 2\naccepted_key_ids: [ci, release]\n",
    )
    repo.write("bundles/helper/prod.json", keys.bundle("helper", "prod", cosign="release"))
    repo.write("bundles/helper/dev.json", keys.bundle("helper", "dev"))
    repo.commit("helper")
    assert cli("controller", "reconcile", "--once", "--json")["ok"]
    repo.remove("bundles/helper/prod.json")
    repo.commit("remove helper from prod")

    planned = cli("controller", "plan", "--json")
    assert [(h["bundle"], h["environment"], h["state"]) for h in planned["prunes"]] == [
        ("helper", "prod", "refused")
    ]
    assert cli("controller", "reconcile", "--json")["prunes"][0]["state"] == "refused"
    text = cli("controller", "status")
    assert "prune helper prod: refused" in text and "problem prune_refused:" in text
    got = cli("registry", "get", "helper", "--env", "prod", "--json")
    assert got["active"]["revision"] == 1
    promoted = next(c for c in got["conditions"] if c["type"] == "Promoted")
    assert promoted["status"] == "False" and promoted["reason"] == "PruneRefused"
    assert "a deletion carries none" in promoted["message"]


def test_the_pull_request_plan_of_a_removal_from_prod_waits_for_approvers(
    cli: Any, repo: Repo, keys: Keys
) -> None:
    """Deleting prod's bundle file in a pull request: prod's approvers must approve the
    removal (waiting for people is no refusal: the plan exits 0); dev's goes at once."""
    for env in ("dev", "staging", "prod"):
        repo.write(f"bundles/helper/{env}.json", keys.bundle("helper", env))
    repo.commit("helper")
    repo.git("checkout", "--quiet", "-b", "feature")
    repo.remove("bundles/helper/prod.json")
    repo.remove("bundles/helper/dev.json")
    repo.commit("remove", push=False)
    work = str(repo.work)
    text = cli("controller", "plan", "--repo", work, "--base", "main", "--head", "feature")
    assert "**0 refused**" in text
    prod = text.split("### prod")[1]
    assert "| `helper` | ⏳ removal needs approval |" in prod
    dev = text.split("### dev")[1].split("### ")[0]
    assert "| `helper` | 🗑️ removed |" in dev
