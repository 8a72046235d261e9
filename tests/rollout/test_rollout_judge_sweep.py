"""The rollout judge's sweep end to end: the real controller rolls a revision out under a
policy whose analysis has a model judge, real bundle runs split between the sides, the
sweep judges them through the environment's grant (a grader model that FAILs the canary's
drafts and PASSes the stable's), and the controller's pass aborts the canary on the judge's
verdict. A run is judged once; a judge model the grant refuses is never called. SQLite and
PostgreSQL."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from kneo.controller.rollouts import sampled
from kneo.engine.judge import JUDGE_INSTRUCTION
from kneo.engine.providers.base import ChatMessage, ModelReply
from kneo.kernel import NetworkGrant
from kneo.platform.directory import ProjectDirectory
from kneo.platform.rollout_judge import RolloutJudge
from kneo.platform.sweeper import start_sweeper
from kneo.spec.models import ModelSpec
from kneo.store.rollouts import rollout_judgements
from kneo.tools import ToolDefinition
from tests.rollout.world import World

JUDGED = """version: v1
promotion: {{approvers: [alice]}}
rollout:
  steps:
    - set_weight: 50
    - analysis:
        min_runs: 4
        max_failure_increase: null
        max_rejection_increase: null
        max_edit_increase: null
        max_escalation_increase: null
        judge:
          model: {model}
          criterion: "The note is a good draft."
          sample: 1.0
          min_judged: 6
    - set_weight: 100
"""
GRADER = "{provider: grader, name: strict}"
#: a judge the project's grant refuses: its destination is not allowed
ELSEWHERE = "{provider: openai, name: gpt-4o-mini, base_url: 'https://judge.example.com/v1'}"


class Grader:
    """A judge model: FAIL for a reply with a bad draft in it, PASS otherwise."""

    name = "grader"

    def __init__(self) -> None:
        self.calls: list[list[ChatMessage]] = []

    def complete(
        self,
        *,
        model: ModelSpec,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolDefinition],
        reach: NetworkGrant | None = None,
    ) -> ModelReply:
        self.calls.append(list(messages))
        said = messages[-1].content or ""
        verdict = "FAIL: the draft is bad" if "bad draft" in said else "PASS: fine"
        return ModelReply(text=verdict, usage={}, stop_reason="stop")


def providers(grader: Grader) -> Any:
    def lookup(name: str) -> Any:
        assert name == "grader", f"the sweep asked for provider {name!r}"
        return grader

    return lookup


def judgements(store: Any) -> list[tuple[str, str, bool]]:
    c = rollout_judgements.c
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(c.run_id, c.track, c.passed))]


def test_the_judge_fails_the_canary_and_the_controller_aborts_it(
    store: Any, tmp_path: Path
) -> None:
    w = World(store, tmp_path, env=JUDGED.format(model=GRADER))
    w.release("good draft")
    w.release("bad draft")
    ro = w.rollout()
    assert (ro.canary_revision, ro.status) == (2, "progressing")
    grader = Grader()
    sweep = RolloutJudge(w.manager, providers=providers(grader))
    assert sweep.pass_once() == {"judged": 0}  # no finished run yet
    for _ in range(60):
        for _ in range(4):
            w.review(w.start(), reject_revision=None)
            w.clock.advance(1)
        sweep.pass_once()
        assert w.ctl.reconcile_once().ok
        if w.rollout().status != "progressing":
            break
    ro = w.rollout()
    assert ro.status == "aborted", ro
    assert "judge" in (ro.reason or "")
    check = ro.figures["verdict"]["checks"]["judge"]
    assert check["outcome"] == "fail" and check["canary"] == 1.0 and check["stable"] == 0.0
    sides = ro.figures["sides"]
    assert sides["canary"]["judge_score"] == 0.0 and sides["stable"]["judge_score"] == 1.0
    assert sides["canary"]["judged"] >= 6 and sides["stable"]["judged"] >= 6

    # each judgement is of the run's own side, sent through the judge's instruction
    kept = judgements(store)
    for run_id, track, passed in kept:
        revision = store.runs.get_run(run_id).bundle_revision
        assert track == ("canary" if revision == 2 else "stable")
        assert passed is (track == "stable")
    system, user = grader.calls[0]
    assert system.content == JUDGE_INSTRUCTION
    assert user.content.startswith("Criterion: The note is a good draft.\n\nInput: hi\nReply: ")
    assert len(grader.calls) == len(kept)


def test_a_run_is_judged_once_across_sweeps(store: Any, tmp_path: Path) -> None:
    w = World(store, tmp_path, env=JUDGED.format(model=GRADER))
    w.release("good draft")
    w.release("bad draft")
    for _ in range(6):
        w.review(w.start(), reject_revision=None)
        w.clock.advance(1)
    grader = Grader()
    first = RolloutJudge(w.manager, providers=providers(grader)).pass_once()
    assert first == {"judged": 6}
    # the same sweep again, and another process's (no cursor): nothing is judged twice
    assert RolloutJudge(w.manager, providers=providers(grader)).pass_once() == {"judged": 0}
    assert len(judgements(store)) == 6 and len(grader.calls) == 6
    # a later run is judged by the next pass, not while another sweeper judges
    w.review(w.start(), reject_revision=None)
    assert store.locks.acquire_lock("rollout-judge", "another-replica", 60)
    assert RolloutJudge(w.manager, providers=providers(grader)).pass_once() == {"judged": 0}
    assert store.locks.release_lock("rollout-judge", "another-replica")
    assert RolloutJudge(w.manager, providers=providers(grader)).pass_once() == {"judged": 1}
    figures = store.rollouts.figures(w.rollout().rollout_id)
    assert figures["canary"].judged + figures["stable"].judged == 7


def test_a_judge_the_grant_refuses_is_never_called(
    store: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    w = World(store, tmp_path, env=JUDGED.format(model=ELSEWHERE))
    w.release("good draft")
    w.release("bad draft")
    for _ in range(4):
        w.review(w.start(), reject_revision=None)
        w.clock.advance(1)
    asked: list[str] = []

    def lookup(name: str) -> Any:
        asked.append(name)
        raise AssertionError("a refused judge's provider is not even looked up")

    sweep = RolloutJudge(w.manager, providers=lookup)
    with caplog.at_level(logging.WARNING, logger="kneo_serv.rollout_judge"):
        assert sweep.pass_once() == {"judged": 0}
        assert sweep.pass_once() == {"judged": 0}  # the sweep goes on, warned once
    assert asked == [] and judgements(store) == []
    warned = [r for r in caplog.records if r.name == "kneo_serv.rollout_judge"]
    assert len(warned) == 1 and warned[0].levelno == logging.WARNING
    text = warned[0].getMessage()
    assert w.rollout().rollout_id in text and "E_DESTINATION_NOT_ALLOWED" in text
    # the controller's analysis waits on the judge (nothing judged), never calls a model
    assert w.ctl.reconcile_once().ok
    ro = w.rollout()
    assert ro.status == "progressing"


def test_the_sweeper_runs_the_judge_in_every_project_of_its_directory(
    store: Any, tmp_path: Path
) -> None:
    w = World(store, tmp_path, env=JUDGED.format(model=GRADER))
    w.release("good draft")
    w.release("bad draft")
    for _ in range(3):
        w.review(w.start(), reject_revision=None)
        w.clock.advance(1)
    sweeper = start_sweeper(w.manager, w.manager.settings)
    try:
        assert sweeper.rollout_judge is not None  # a service's sweeper judges, every 30 s
    finally:
        sweeper.stop()
    grader = Grader()
    other = store.for_project(store.projects.create_project("team-b").name)
    assert other.rollouts.active() == []
    directory = ProjectDirectory(w.manager)
    sweep = RolloutJudge(w.manager, directory, providers=providers(grader))
    assert sweep.pass_once() == {"judged": 3}
    assert len(grader.calls) == 3


def test_only_the_sampled_runs_are_judged(store: Any, tmp_path: Path) -> None:
    env = JUDGED.format(model=GRADER).replace("sample: 1.0", "sample: 0.5")
    w = World(store, tmp_path, env=env)
    w.release("good draft")
    w.release("bad draft")
    runs = []
    for _ in range(16):
        paused = w.start()
        runs.append(paused.run_id)
        w.review(paused, reject_revision=None)
        w.clock.advance(1)
    rollout_id = w.rollout().rollout_id
    picked = {r for r in runs if sampled(rollout_id, r, 0.5)}
    assert 0 < len(picked) < len(runs)
    grader = Grader()
    sweep = RolloutJudge(w.manager, providers=providers(grader), per_pass=3)
    total = 0
    for _ in range(10):  # at most 3 a pass; the cursor passes over the runs not sampled
        total += sweep.pass_once()["judged"]
    assert total == len(picked)
    assert {run_id for run_id, _, _ in judgements(store)} == picked
