"""A model judge of rollouts' runs: the sweep that fills ``rollout_judgements``.

An ``analysis`` step of a rollout may name a ``judge`` (:class:`~kneo.policy.rollout.JudgeRule`):
a model that grades a sample of the rollout's finished runs against a criterion. The
controller's pass never calls a model; this sweep does, in the background (a service's or
worker's sweeper, every :data:`PASS_SECONDS`), and the pass counts what it recorded
(:meth:`~kneo.store.rollouts.RolloutFacet.figures`: ``judged``, ``judge_passed`` per side).

Each pass, in each project: every rollout still moving whose next analysis (the current
step's or a later one's) has a judge; its bundle's succeeded runs in its environment on the
stable or canary revision, started since the rollout began, in the order they settled; those
the rule samples (:func:`~kneo.controller.rollouts.sampled`: a stable hash of rollout and
run, so every process picks the same), not judged yet, at most :data:`PER_PASS` per rollout
(a cursor per rollout passes over the runs not sampled; it starts over every
:data:`RESCAN_EVERY` passes). One sweeper judges at a time (a store lock, :data:`LOCK`).
Each is sent to the judge model as the criterion and ``Input: ...\\nReply: ...`` (the run's
input and output) and its verdict kept once (a second sweep writes nothing for it). The
side is the canary's when the run ran the canary revision, else the stable's.

The judge model is called through the grant of the runs' environment
(:meth:`~kneo.platform.admission.RunAdmission.host_access`, origin ``bundle``): a model
whose destination or key the grant refuses is not called, nothing is recorded, and one
warning per rollout says so (the refusal's code, never a secret). A failing rollout or
project is logged and the others go on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from kneo.controller.rollouts import sampled
from kneo.engine.judge import ModelJudge, transcript
from kneo.errors import KneoError
from kneo.ids import new_id
from kneo.logs import get_logger
from kneo.policy.rollout import JudgeRule, RolloutPolicy
from kneo.redaction import redact_text

if TYPE_CHECKING:
    from kneo.engine.providers.base import Provider
    from kneo.platform.admission import RunAdmission
    from kneo.platform.directory import ProjectDirectory
    from kneo.settings import Settings
    from kneo.spec.project import ProjectContext
    from kneo.store import Store
    from kneo.store.rollouts import RolloutRecord

__all__ = ["PASS_SECONDS", "PER_PASS", "RolloutJudge", "judge_rule"]

log = get_logger("kneo_serv.rollout_judge")

#: how often a sweeper judges rollouts' runs
PASS_SECONDS = 30.0
#: runs judged per rollout and pass, at most (each a model call)
PER_PASS = 20
#: candidate runs looked at per rollout and pass, at most (unsampled ones are passed over)
SCAN = 2000
#: every this many passes the cursors start over: a run whose commit landed behind one
#: (settled while the pass read, committed after) is found again
RESCAN_EVERY = 20
_PAGE = 200
#: the store lock one sweeper holds while it judges (replicas take turns: a run is not sent
#: to the judge model twice at the same moment), and how long it outlives a dead holder
LOCK = "rollout-judge"
LOCK_SECONDS = 600.0


class JudgedPlatform(Protocol):
    """What the sweep needs of a project's platform (``PlatformManager`` is one)."""

    @property
    def store(self) -> Store: ...

    @property
    def settings(self) -> Settings: ...

    @property
    def project(self) -> ProjectContext | None: ...

    @property
    def admission(self) -> RunAdmission: ...


def judge_rule(record: RolloutRecord) -> JudgeRule | None:
    """The judge of the analysis the rollout meets next (at its step or later), if any."""
    policy = RolloutPolicy.model_validate(record.policy["rollout"])
    for step in policy.steps[record.step :]:
        if step.analysis is not None and step.analysis.judge is not None:
            return step.analysis.judge
    return None


class RolloutJudge:
    """The sweep (module docstring): :meth:`pass_once` in its platform's project, or in
    every project of ``directory`` (a worker's). ``providers``: the model providers by
    name (default: the registry with each project's provider secrets)."""

    def __init__(
        self,
        platform: JudgedPlatform,
        directory: ProjectDirectory | None = None,
        *,
        providers: Callable[[str], Provider] | None = None,
        per_pass: int = PER_PASS,
    ) -> None:
        self.platform = platform
        self.directory = directory
        self.providers = providers
        self.per_pass = per_pass
        #: per rollout: the position up to which every sampled run was judged
        self._cursors: dict[str, tuple[datetime, str]] = {}
        #: rollouts whose judge was refused or failed (warned once)
        self._warned: set[str] = set()
        self._passes = 0
        self._moving: set[str] = set()
        self.owner = new_id("rollout-judge")

    def pass_once(self) -> dict[str, int]:
        """One pass over every project's moving rollouts, unless another sweeper holds the
        judge's lock (:data:`LOCK`); how many runs were judged."""
        locks = self.platform.store.locks
        if not locks.acquire_lock(LOCK, self.owner, LOCK_SECONDS):
            return {"judged": 0}
        try:
            return self._pass()
        finally:
            locks.release_lock(LOCK, self.owner)

    def _pass(self) -> dict[str, int]:
        ids = (
            [self.platform.store.project_id]
            if self.directory is None
            else [e.id for e in self.directory.entries()]
        )
        self._passes += 1
        if self._passes % RESCAN_EVERY == 0:
            self._cursors.clear()
        self._moving = set()
        judged = 0
        for project_id in ids:
            try:
                platform = (
                    self.platform if self.directory is None else self.directory.manager(project_id)
                )
                judged += self.judge_project(platform)
            except Exception:  # one project's failure must not stop the others' judging
                log.exception("rollout judge pass failed in project %s", project_id)
        # forget the rollouts that stopped moving
        self._cursors = {k: v for k, v in self._cursors.items() if k in self._moving}
        self._warned &= self._moving
        return {"judged": judged}

    def judge_project(self, platform: JudgedPlatform) -> int:
        """Judge the sampled runs of one project's moving rollouts (module docstring)."""
        count = 0
        for record in platform.store.rollouts.active():
            self._moving.add(record.rollout_id)
            try:
                rule = judge_rule(record)
                if rule is not None:
                    count += self._judge_rollout(platform, record, rule)
            except Exception:  # one rollout's failure must not stop the others'
                log.exception("rollout judge failed for rollout %s", record.rollout_id)
        return count

    def _judge(self, platform: JudgedPlatform, record: RolloutRecord, rule: JudgeRule) -> (
        ModelJudge | None
    ):  # fmt: skip
        """The rollout's judge under its environment's grant; ``None`` (warned once) when
        the grant refuses the model."""
        grant = platform.admission.host_access(record.environment, "bundle")
        project = platform.project
        secrets: Mapping[str, str] | None = (
            project.config.secrets.providers if project is not None else None
        )
        try:
            return ModelJudge.build(
                rule.model, grant, settings=platform.settings, secrets=secrets,
                providers=self.providers,
            )  # fmt: skip
        except KneoError as exc:
            self._warn(record, f"the grant of {record.environment!r} refuses it ({exc.code})")
            return None

    def _warn(self, record: RolloutRecord, why: str) -> None:
        if record.rollout_id in self._warned:
            return
        self._warned.add(record.rollout_id)
        log.warning(
            "rollout %s: its judge model is not called: %s; no run is judged",
            record.rollout_id,
            why,
        )

    def _judge_rollout(self, platform: JudgedPlatform, record: RolloutRecord, rule: JudgeRule) -> (
        int
    ):  # fmt: skip
        judge = self._judge(platform, record, rule)
        if judge is None:
            return 0
        store, rid = platform.store, record.rollout_id
        after = self._cursors.get(rid)
        done = scanned = 0
        try:
            while done < self.per_pass and scanned < SCAN:
                page = store.rollouts.unjudged_runs(record, after=after, limit=_PAGE)
                for candidate in page:
                    if sampled(rid, candidate.run_id, rule.sample):
                        if done >= self.per_pass or not self._one(
                            store, record, rule, judge, candidate.run_id
                        ):
                            return done  # the next pass goes on from here
                        done += 1
                    scanned += 1
                    after = (candidate.settled_at, candidate.run_id)
                if len(page) < _PAGE:
                    break
            return done
        finally:
            if after is not None:
                self._cursors[rid] = after

    def _one(
        self, store: Store, record: RolloutRecord, rule: JudgeRule, judge: ModelJudge, run_id: str
    ) -> bool:
        """Judge one run and keep the verdict; ``False`` when the model call failed (warned
        once; the run is tried again next pass)."""
        run = store.runs.get_run(run_id)
        try:
            passed, reason = judge(
                rule.criterion, transcript(run.input_text, run.output_text or "")
            )
        except KneoError as exc:
            self._warn(record, f"the call failed ({exc.code})")
            return False
        track = "canary" if run.bundle_revision == record.canary_revision else "stable"
        store.rollouts.record_judgement(
            record.rollout_id, run_id, track=track, passed=passed, reason=redact_text(reason)
        )
        return True
