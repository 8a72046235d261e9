"""The rollout tests' world: a Git repository with an environment under a ``rollout:``
policy, the real controller, and a platform whose bundle runs a scripted model drafts and a
scripted reviewer decides. Its store comes from ``conftest.py``'s fixture (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kneo import Decision
from kneo.platform import create_platform
from kneo.platform.bundles import run_bundle
from kneo.settings import Settings
from kneo.spec.project import ProjectContext
from kneo.store import RolloutQuery
from tests.controller.gitops_fixtures import Keys, Repo, make_controller

MIN_RUNS = 20
DEV = f"""version: v1
promotion: {{approvers: [alice]}}
rollout:
  steps:
    - set_weight: 50
    - analysis:
        min_runs: {MIN_RUNS}
        max_rejection_increase: 0.15
        max_failure_increase: null
        max_edit_increase: null
        max_escalation_increase: null
    - set_weight: 100
"""
FROZEN = """  freeze:
    - reason: holidays
      from: "2026-03-01T00:00:05Z"
"""


def flow(draft: str) -> dict[str, Any]:
    """A signed workflow: a scripted model drafts, then a person reviews the draft."""
    return {
        "version": "v1",
        "agent": {
            "name": "helper",
            "system_prompt": "Draft a note.",
            "model": {"provider": "dummy", "name": "dummy", "script": [{"text": draft}]},
        },
        "workflow": {
            "type": "sequential",
            "name": "helper-flow",
            "steps": [
                {"id": "draft", "kind": "agent", "ref": "helper"},
                {"id": "approve", "kind": "human", "ref": "reviewer"},
            ],
        },
        "components": {"humans": {"reviewer": {"prompt": "Publish this draft?"}}},
    }


class World:
    def __init__(self, store: Any, tmp_path: Path, env: str = DEV) -> None:
        self.store, self.clock = store, store.clock
        self.repo, self.keys = Repo(tmp_path / "git"), Keys(tmp_path / "keys")
        self.repo.write("environments/dev.yaml", env)
        self.ctl = make_controller(store, self.repo, self.keys, self.clock, tmp_path)
        settings = Settings.from_env({})
        (tmp_path / ".kneo").mkdir(exist_ok=True)
        (tmp_path / ".kneo" / "config.yaml").write_text("version: v1\nenvironments: {dev: {}}\n")
        project = ProjectContext.discover(cwd=tmp_path, settings=settings)
        self.manager = create_platform(
            settings=settings, project=project, store=store, clock=self.clock
        )

    def release(self, draft: str) -> None:
        self.repo.write("bundles/helper/dev.json", self.keys.bundle("helper", "dev", flow(draft)))
        self.repo.commit(draft)
        result = self.ctl.reconcile_once()
        assert result.ok, result.error

    def start(self, session: str | None = None) -> Any:
        return run_bundle(
            self.manager, bundle="helper", environment="dev", input_text="hi", session_id=session
        )

    def review(self, paused: Any, *, reject_revision: int | None) -> int:
        """A scripted reviewer: rejects the drafts of ``reject_revision``, approves others."""
        revision = int(self.store.runs.get_run(paused.run_id).bundle_revision)
        verdict = "rejected" if revision == reject_revision else "approved"
        self.manager.resume(
            paused.continuation_id, Decision(paused.request_id, verdict), actor="reviewer"
        )
        return revision

    def rollout(self) -> Any:
        newest = RolloutQuery(bundle="helper", environment="dev", limit=1)
        return next(iter(self.store.rollouts.list_rollouts(newest).items), None)

    def drive(self, runs: int, *, reject_revision: int | None) -> list[int]:
        """``runs`` runs, each reviewed, the controller passing after every one."""
        seen = []
        for _ in range(runs):
            seen.append(self.review(self.start(), reject_revision=reject_revision))
            self.clock.advance(1)
            assert self.ctl.reconcile_once().ok
            if self.rollout().status not in ("progressing", "paused"):
                break
        return seen
