"""A rollout's judge score where people read it: ``GET /v1/rollouts/{id}`` (each side's
``judged``, ``judge_passed``, ``judge_score``), the ``judge`` column of ``kneo rollout status
ID`` and the console's "judge score" row. SQLite and PostgreSQL."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from kneo.cli import rollout_cmd
from kneo.cli.output import ClientOptions
from tests.rollout.rollout_service import Service, auth, begin, count_runs
from tests.rollout.rollout_service import service as service
from tests.rollout.test_rollout_cli import through
from tests.rollout.test_rollout_console import Person


def judged(service: Service) -> None:
    """A rollout whose judge passed 1 of the canary's 4 judged runs and 4 of the stable's."""
    store = service.store
    begin(store, "ro_j")
    count_runs(store, "ro_j")
    for track, passed in (("canary", [True, False, False, False]), ("stable", [True] * 4)):
        for i, ok in enumerate(passed):
            store.rollouts.record_judgement(
                "ro_j", f"run_{track}_{i}", track=track, passed=ok, reason="PASS" if ok else "FAIL"
            )


def test_the_api_shows_each_sides_judge_score(service: Service) -> None:
    judged(service)
    answer = service.client.get("/v1/rollouts/ro_j", headers=auth("viewer"))
    assert answer.status_code == 200, answer.text
    sides = answer.json()["figures"]
    assert (sides["canary"]["judged"], sides["canary"]["judge_passed"]) == (4, 1)
    assert sides["canary"]["judge_score"] == 0.25 and sides["stable"]["judge_score"] == 1.0


def test_the_cli_and_the_console_show_the_judge(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    judged(service)
    monkeypatch.setattr(ClientOptions, "client", lambda self, **_: through(service, "viewer"))
    shown = CliRunner().invoke(rollout_cmd.app, ["status", "ro_j"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "judge" in shown.output
    assert re.search(r"canary\s.*\s0\.25\s", shown.output), shown.output
    page = Person(service, "viewer").get("/ui/rollouts/ro_j")
    assert page.status_code == 200, page.text
    assert "judge score" in page.text
