"""A pull request's plan says which promotions will roll out and by which steps (the
environment's ``rollout:``), instead of "promotes"; a first promotion there, with nothing
serving yet, takes every run at once and says so as before."""

from __future__ import annotations

from typing import Any

from gitops_fixtures import Keys, Repo, spec

from tests.controller.test_controller_cli import cli  # noqa: F401 (the fixture)

DEV = """version: v1
rollout:
  steps:
    - set_weight: 10
    - analysis: {min_runs: 20}
    - pause: {approvers: [release-managers]}
    - set_weight: 100
"""
STEPS = (
    "set_weight 10 → analysis (min_runs 20) → pause (approval by release-managers) → set_weight 100"
)


def test_the_plan_names_the_steps_a_promotion_rolls_out_by(
    cli: Any,  # noqa: F811
    repo: Repo,
    keys: Keys,
) -> None:
    repo.write("environments/dev.yaml", DEV)
    repo.write("bundles/helper/dev.json", keys.bundle("helper", "dev", spec("helper v1")))
    repo.commit("v1")
    repo.git("checkout", "--quiet", "-b", "feature")
    repo.write("bundles/helper/dev.json", keys.bundle("helper", "dev", spec("helper v2")))
    repo.write("bundles/mailer/dev.json", keys.bundle("mailer", "dev", spec("mailer v1")))
    repo.commit("v2", push=False)
    work = str(repo.work)

    text = cli("controller", "plan", "--repo", work, "--base", "main", "--head", "feature")
    dev = text.split("### dev")[1]
    assert "| `helper` | 🚦 rolls out (4 steps) |" in dev
    assert f"rolls out in 4 steps: {STEPS}" in dev
    assert "| `mailer` | ✅ promotes |" in dev  # nothing serves it yet: every run at once
    data = cli("controller", "plan", "--repo", work, "--base", "main", "--head", "feature",
               "--json")  # fmt: skip
    [env] = data["environments"]
    by_name = {b["bundle"]: b for b in env["bundles"]}
    assert by_name["helper"]["rollout"] == STEPS.split(" → ")
    assert by_name["helper"]["action"] == "activate"
    assert by_name["mailer"]["rollout"] is None


def test_the_controllers_own_plan_says_it_too(cli: Any, repo: Repo, keys: Keys) -> None:  # noqa: F811
    repo.write("environments/dev.yaml", DEV)
    repo.write("bundles/helper/dev.json", keys.bundle("helper", "dev", spec("helper v1")))
    repo.commit("v1")
    assert cli("controller", "reconcile", "--json")["ok"]
    repo.write("bundles/helper/dev.json", keys.bundle("helper", "dev", spec("helper v2")))
    repo.commit("v2")
    planned = cli("controller", "plan", "--json")
    [action] = [a for a in planned["actions"] if a["bundle"] == "helper"]
    assert action["action"] == "activate" and f"rolls out in 4 steps: {STEPS}" in action["message"]
