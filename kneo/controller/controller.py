"""The :class:`Controller`: one reconcile as ordered sub-steps, leader election, the loop.

A reconcile is fetch -> load desired state -> observe the registry -> plan -> apply ->
record status, stopping at the first step that fails (Flux's ordered sub-steps). Failures
are values, not exceptions: :meth:`Controller.reconcile_once` always returns a
:class:`ReconcileResult`, records the error in the controller status and, when the error
is new, as a ``controller.reconcile_failed`` audit event. Previously active revisions keep
serving whatever happens here.

The sub-steps live where they are named: the scope of an incremental pass
(:mod:`kneo.controller.pass_scope`), loading (:mod:`kneo.controller.loader`) through the
policy in force (:mod:`kneo.controller.policy_pass`), observing
(:mod:`kneo.controller.observe`), planning (:mod:`kneo.controller.planner`), applying
(:mod:`kneo.controller.apply`) and recording the status (:mod:`kneo.controller.status`);
this module runs them in order, as the leader.

Leader election: a reconcile that writes first takes (or renews) the store lock
``controller:<name>``; a process that cannot get it stands by and reports so. A leader
that dies stops renewing, its lock lapses after ``lease_seconds``, and a standby takes over.
A project's controller leads under the host controller's lock instead
(:class:`~kneo.controller.leadership.SharedLeadership`, :mod:`kneo.controller.projects`).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from kneo import __version__, metrics, tracing
from kneo.bundle.keys import Keyring
from kneo.clock import Clock, SystemClock, utc_iso
from kneo.controller import incremental, prune_gate, rollout_pass
from kneo.controller.apply import Applier, Outcome
from kneo.controller.config import ControllerConfig
from kneo.controller.leadership import LeaderLock, Leadership
from kneo.controller.loader import DesiredStateLoader
from kneo.controller.loop import ControllerLoop
from kneo.controller.model import ActionKind, DesiredState, PlanOptions
from kneo.controller.observe import Snapshot, observe
from kneo.controller.operations import TRUST_METADATA_KEY
from kneo.controller.pass_scope import pass_scope, saved_state
from kneo.controller.plan_actions import EMPTY_DESIRED_STATE
from kneo.controller.planner import plan
from kneo.controller.policy_pass import PolicyStep, publish_run_policies
from kneo.controller.policy_record import record_key
from kneo.controller.promotion import PromotionGate
from kneo.controller.ratchet import PolicyRatchet
from kneo.controller.runtime import POLICY_METADATA_KEY
from kneo.controller.source import Source
from kneo.controller.spec_checks import SpecChecker, default_spec_checker
from kneo.controller.status import record_status, status_dict
from kneo.errors import ErrorCode, KneoError
from kneo.ids import new_id
from kneo.logs import get_logger
from kneo.policy.floors import NO_FLOORS, Floors
from kneo.projects import DEFAULT_PROJECT, DEFAULT_PROJECT_ID

if TYPE_CHECKING:
    from pathlib import Path

    from kneo.controller.model import Action
    from kneo.controller.watch import Triggerable
    from kneo.store.api import Store
    from kneo.store.coordination.controller_requests import ControllerWakeups
    from kneo.tools import ToolRegistry

log = get_logger("kneo.controller")

#: Called with (stage, done, total) during long reconciles.
ProgressCallback = Callable[[str, int, int], None]


@dataclass
class ReconcileResult:
    """What one reconcile (or dry run) found and did."""

    commit: str | None
    started_at: datetime
    duration_seconds: float = 0.0
    outcomes: list[Outcome] = field(default_factory=list)
    error: dict[str, str] | None = None
    dry_run: bool = False
    leader: bool = True
    problems: list[dict[str, str]] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    #: the project whose source this pass reconciled (not part of :meth:`to_dict`)
    project: str = DEFAULT_PROJECT
    #: removals held back by the policy in force (:func:`kneo.controller.prune_gate.held`)
    prunes: list[dict[str, Any]] = field(default_factory=list)
    #: rollouts this pass moved (:func:`kneo.controller.rollout_pass.step_rollouts`)
    rollouts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def written(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.applied]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for o in self.outcomes:
            out[o.action.kind.value] = out.get(o.action.kind.value, 0) + 1
        return out

    def summary(self) -> dict[str, Any]:
        """:meth:`to_dict` without the actions that changed nothing (what a queued reconcile
        request keeps of the pass that served it; a full pass lists every bundle)."""
        data = self.to_dict()
        data["actions"] = [
            o.to_dict() for o in self.outcomes if o.action.kind is not ActionKind.NOOP or o.error
        ]
        return data

    def to_dict(self) -> dict[str, Any]:
        return {
            "commit": self.commit,
            "started_at": utc_iso(self.started_at),
            "duration_seconds": round(self.duration_seconds, 4),
            "dry_run": self.dry_run,
            "leader": self.leader,
            "ok": self.ok,
            "error": self.error,
            "counts": self.counts(),
            "problems": self.problems,
            "stats": self.stats,
            "prunes": self.prunes,
            "actions": [o.to_dict() for o in self.outcomes],
        }


@dataclass
class _Pass:
    """One reconcile pass in progress: the stage it is in (for the error), each stage's
    seconds, and the status it started from and the incremental state it ends with."""

    started: datetime
    stage: str = "fetch"
    timings: dict[str, float] = field(default_factory=dict)
    mark: float = field(default_factory=time.perf_counter)
    previous: Any = None
    state: incremental.ReconcileState | None = None
    #: The policy in force as stored, and this pass's decision about it.
    policy: PolicyStep | None = None

    def lap(self, name: str) -> None:
        """Seconds since the last lap, recorded under ``name``."""
        now = time.perf_counter()
        self.timings[name] = round(now - self.mark, 4)
        self.mark = now


class Controller:
    """Reconciles one Git source into one store. Thread-safe entry points.

    ``reconcile_once`` for a single pass (CLI, webhook, tests); ``run`` for the loop that
    polls every ``config.interval`` seconds and wakes early on :meth:`request_reconcile`.
    """

    def __init__(
        self,
        store: Store,
        source: Source,
        keyring: Keyring,
        *,
        config: ControllerConfig | None = None,
        clock: Clock | None = None,
        gate: PromotionGate | None = None,
        spec_checker: SpecChecker | None = None,
        tools: ToolRegistry | None = None,
        owner: str | None = None,
        floors: Floors | None = None,
        leadership: Leadership | None = None,
        on_wake: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.source = source
        self.config = config or ControllerConfig()
        self.clock = clock or SystemClock()
        #: the project whose registry this controller writes (its store view's)
        self.project: str = getattr(store, "project", DEFAULT_PROJECT)
        self.gate = gate or PromotionGate(getattr(store, "project_id", DEFAULT_PROJECT_ID))
        # the tools specs are checked against: a new tool deployed is a new verdict
        self._tool_names = sorted(tools.names()) if tools is not None else None
        if spec_checker is None and tools is not None:
            spec_checker = default_spec_checker(tools)
        self.loader = DesiredStateLoader(keyring, clock=self.clock, spec_checker=spec_checker)
        #: What takes a policy change from Git into force (:mod:`kneo.controller.ratchet`).
        self.ratchet = PolicyRatchet(keyring, floors or NO_FLOORS, project_id=self.gate.project_id)
        self.applier = Applier(store, gate=self.gate, clock=self.clock)
        if leadership is None:
            leadership = LeaderLock(
                store,
                self.config.lock_name,
                owner or f"{socket.gethostname()}:{os.getpid()}:{new_id('ctl', 4)}",
                self.config.lease_seconds,
                released=lambda: store.controller.notify_controller(self.config.name),
            )
        self.leadership = leadership
        self.owner = leadership.owner
        self._wake = threading.Event()
        self._on_wake = on_wake
        self._reconcile_lock = threading.Lock()
        self._last: ReconcileResult | None = None

    # ---------------------------------------------------------------- leadership

    @property
    def lock_name(self) -> str:
        return self.leadership.name

    def try_lead(self) -> bool:
        """Take or renew the leader lock; ``False`` while another live controller holds it."""
        return self.leadership.try_lead()

    def step_down(self) -> None:
        """Release the leader lock and wake the standbys (PostgreSQL ``NOTIFY``), so one
        takes over at once instead of after the lease."""
        self.leadership.step_down()

    def lock_free(self) -> bool:
        """Whether no live controller holds the leader lock (a standby's cheap read before
        it tries to take it)."""
        return self.leadership.lock_free()

    @property
    def is_leader(self) -> bool:
        return self.leadership.is_leader

    # ---------------------------------------------------------------- reconcile

    def request_reconcile(self) -> None:
        """Wake the loop now (webhook, watchdog); a no-op for a stopped controller."""
        self._wake.set()
        if self._on_wake is not None:
            self._on_wake()

    def plan(self, *, progress: ProgressCallback | None = None) -> ReconcileResult:
        """A dry run: everything up to the plan, no writes (``kneo controller plan``)."""
        return self._reconcile(dry_run=True, progress=progress)

    def reconcile_once(
        self, *, progress: ProgressCallback | None = None, full: bool = False
    ) -> ReconcileResult:
        """Fetch, verify, plan and apply once, if this controller is (or becomes) the leader.

        Incremental from the saved state when it can be (see :mod:`.incremental`); ``full``
        judges every file and reads the whole registry regardless."""
        if not self.try_lead():
            return self.standing_by()
        self._serve_plans()
        served = self._take_requests()
        result = self._reconcile(dry_run=False, progress=progress, full=full)
        if served:
            result.stats["requests"] = len(served)
            try:
                self.store.controller.finish_controller_requests(
                    self.config.name, served, result.summary()
                )
            except Exception as exc:  # the next pass takes them again
                log.warning("recording the result on reconcile requests failed: %s", exc)
        return result

    def standing_by(self) -> ReconcileResult:
        """The result of a pass this controller did not run: another one leads."""
        lock = self.leadership.current()
        result = ReconcileResult(None, self.clock.now(), leader=False, project=self.project)
        result.stats["leader"] = lock.owner if lock else None
        return result

    def _serve_plans(self) -> None:
        """Answer the queued ``plan`` requests (``kneo controller plan`` through a service)
        with one dry run, before this pass applies what it plans: all of them, whoever asked."""
        try:
            taken = list(
                self.store.controller.take_controller_requests(
                    self.config.name, self.owner, plans=True
                )
            )
        except Exception as exc:  # the pass itself reports the database
            log.warning("taking plan requests failed: %s", exc)
            return
        if not taken:
            return
        planned = self.plan()
        try:
            self.store.controller.finish_controller_requests(
                self.config.name, taken, planned.summary()
            )
        except Exception as exc:  # the next pass takes them again
            log.warning("recording the plan on plan requests failed: %s", exc)

    def _take_requests(self) -> list[int]:
        """The queued reconcile requests this pass serves (webhooks, ``POST
        /v1/controller/reconcile`` on any replica)."""
        try:
            return list(
                self.store.controller.take_controller_requests(self.config.name, self.owner)
            )
        except Exception as exc:  # the pass itself reports the database
            log.warning("taking reconcile requests failed: %s", exc)
            return []

    def _reconcile(
        self, *, dry_run: bool, progress: ProgressCallback | None, full: bool = False
    ) -> ReconcileResult:
        with (
            self._reconcile_lock,
            tracing.span("reconcile", **{"kneo.controller.dry_run": dry_run}) as span,
        ):
            started = self.clock.now()
            t0 = time.perf_counter()
            result = ReconcileResult(None, started, dry_run=dry_run, project=self.project)
            run = _Pass(started)
            try:
                self._run_pass(run, result, dry_run=dry_run, progress=progress, full=full)
            except KneoError as exc:
                result.error = {"stage": run.stage, "code": exc.code, "message": exc.message}
            except Exception as exc:  # never a traceback to a user; the loop keeps running
                log.exception("reconcile failed at %s", run.stage)
                result.error = {
                    "stage": run.stage,
                    "code": ErrorCode.internal_error,
                    "message": f"{type(exc).__name__}: {exc}",
                }
            result.duration_seconds = time.perf_counter() - t0
            if span is not None:
                span.set_attributes(
                    tracing.attributes(
                        {"kneo.git.commit": result.commit, "kneo.controller.stage": run.stage}
                    )
                )
                if result.error is not None:
                    tracing.fail(span, result.error["code"], result.error["message"])
            if not dry_run:
                metrics.record_reconcile(
                    "ok" if result.ok else "error", result.duration_seconds, project=self.project
                )
                record_status(
                    self.store,
                    self.config,
                    source=self.source.describe(),
                    leader=self.owner,
                    result=result,
                    previous=run.previous,
                    state=run.state if result.ok else None,
                    run_policy=run.policy.outcome if result.ok and run.policy else None,
                )
            self._last = result
            return result

    def _run_pass(
        self,
        run: _Pass,
        result: ReconcileResult,
        *,
        dry_run: bool,
        progress: ProgressCallback | None,
        full: bool,
    ) -> None:
        """Fetch, load, observe, plan and (unless ``dry_run``) apply, filling ``result``;
        ``run.stage`` names the stage an exception escaped from."""
        result.commit = self.source.fetch()
        run.lap("fetch")
        run.stage = "observe"
        if not dry_run:
            run.previous = self.store.registry.get_controller_status(self.config.name)
        previous = run.previous
        scope, change_seq = pass_scope(
            self.store,
            self.source,
            previous,
            result.commit,
            result.stats,
            full=full,
            fingerprint=self._fingerprint(),
            now=self.clock.now(),
        )
        with self.store.metadata.metadata_snapshot(self._metadata_keys):
            self._load_and_apply(run, result, dry_run, progress, scope, change_seq)
        if not dry_run:
            run.stage = "rollouts"
            result.rollouts = rollout_pass.step_rollouts(self.store, self.clock.now())

    @property
    def _metadata_keys(self) -> list[str]:
        """What a pass reads of the store's metadata, in one query."""
        return [record_key(self.config.name), POLICY_METADATA_KEY, TRUST_METADATA_KEY]

    def _load_and_apply(
        self,
        run: _Pass,
        result: ReconcileResult,
        dry_run: bool,
        progress: ProgressCallback | None,
        scope: incremental.Scope | None,
        change_seq: int,
    ) -> None:
        """Load (through the policy in force), observe, plan and apply (unless ``dry_run``)."""
        desired = self._load(run, result, progress, scope, renew=not dry_run)
        run.stage = "observe"
        snapshot = observe(self.store, self.gate, desired.scope, desired.revisions.keys())
        run.lap("observe")
        run.stage = "plan"
        actions = self._plan(run, result, desired, snapshot)
        run.lap("plan")
        if dry_run:
            result.outcomes = [Outcome(a, False) for a in actions]
        else:
            run.stage = "apply"
            self._apply_plan(run, result, desired, snapshot, actions, progress, change_seq)
        stats = self.loader.last_stats
        result.stats.update(files=stats.files, verified=stats.judged, cached=stats.cached)
        result.stats["seconds"] = run.timings

    def _load(
        self,
        run: _Pass,
        result: ReconcileResult,
        progress: ProgressCallback | None,
        scope: incremental.Scope | None,
        *,
        renew: bool,
    ) -> DesiredState:
        """Desired state at the fetched commit, judged by the policy in force; the
        problems people read (the policy's, then the commit's)."""
        assert result.commit is not None
        previous = run.previous
        run.policy = PolicyStep(self.store, self.ratchet, self.source, self.clock, self.config.name)
        run.stage = "load"
        desired = self.loader.load(
            self.source,
            result.commit,
            progress=self._loading(progress, renew=renew),
            scope=None if scope is None else scope.names,
            bundle_count=None if scope is None else scope.bundle_count,
            policy=run.policy.hook(result.commit),
        )
        if scope is not None and desired.scope is None:
            result.stats.update(mode="full", full_reason=incremental.POLICY_CHANGED)
        outcome = run.policy.outcome
        result.problems = [
            p.to_dict() for p in (outcome.problems if outcome else ())
        ] + desired.findings(previous.details.get("problems") or () if previous else ())
        run.lap("load")
        return desired

    def _plan(
        self, run: _Pass, result: ReconcileResult, desired: DesiredState, snapshot: Snapshot
    ) -> list[Action]:
        """The actions that make the registry match; an empty commit and the removals the
        policy in force holds back are problems too."""
        actions = plan(
            desired,
            snapshot.observed,
            PlanOptions(self.config.prune, self.config.allow_empty, run.started),
        )
        if any(a.reason == EMPTY_DESIRED_STATE for a in actions):
            result.problems.append(
                {
                    "code": EMPTY_DESIRED_STATE,
                    "message": "the commit holds no bundles; nothing was pruned "
                    "(allow_empty is off)",
                }
            )
        result.prunes = prune_gate.held(actions, desired.environments, self.project)
        result.problems += prune_gate.problems(result.prunes)
        return actions

    def _apply_plan(
        self,
        run: _Pass,
        result: ReconcileResult,
        desired: DesiredState,
        snapshot: Snapshot,
        actions: list[Action],
        progress: ProgressCallback | None,
        change_seq: int,
    ) -> None:
        """Apply as the leader, then what follows from it: removals no longer held, the
        environments' run rules, the policy decision, and the state the next pass
        continues from."""
        previous = run.previous
        if not self.still_leader():
            raise KneoError("lost the leader lock before applying", code=ErrorCode.not_leader)
        result.outcomes = self._apply(desired, snapshot, actions, progress)
        self.applier.withdraw_prunes(previous, result.prunes, desired.scope)
        publish_run_policies(self.store, self.loader.keyring, desired)
        if run.policy is not None:
            run.policy.store_decision(self.clock.now())
        run.lap("apply")
        run.state = incremental.next_state(
            saved_state(previous),
            desired,
            {  # not settled: planned again next pass
                o.action.name
                for o in result.outcomes
                if o.error
                or o.action.reason == EMPTY_DESIRED_STATE
                # a refusal lifts without a registry change (unblock, a window ending)
                or o.action.kind is ActionKind.REFUSE
            },
            fingerprint=self._fingerprint(),
            change_seq=change_seq,
            now=run.started,
        )

    def _fingerprint(self) -> str:
        """What verdicts depend on besides the files: a change forces a full pass."""
        return incremental.fingerprint(
            version=__version__,
            keyring=self.loader.keyring_id,
            floors=self.ratchet.floors.digest,
            source=self.source.describe(),
            prune=self.config.prune,
            allow_empty=self.config.allow_empty,
            tools=self._tool_names,
        )

    def _apply(
        self,
        desired: DesiredState,
        snapshot: Snapshot,
        actions: list[Action],
        progress: ProgressCallback | None,
    ) -> list[Outcome]:
        renew_every = self.config.lease_seconds / 3
        last_renew = time.monotonic()

        def on_progress(done: int, total: int) -> None:
            nonlocal last_renew
            if time.monotonic() - last_renew > renew_every:
                last_renew = time.monotonic()
                if not self.still_leader():
                    raise KneoError(
                        "lost the leader lock while applying", code=ErrorCode.not_leader
                    )
            if progress is not None:
                progress("apply", done, total)

        return self.applier.apply(desired, snapshot, actions, progress=on_progress)

    def _loading(
        self, progress: ProgressCallback | None, *, renew: bool
    ) -> Callable[[int, int], None]:
        """The loader's per-bundle callback: reports ``progress`` and, for a pass that will
        apply, renews the leader lock every third of the lease. A cold pass over thousands
        of bundles on a busy host can judge files for longer than the lease; without this
        its lock lapsed mid-load and the pass ended "lost the leader lock before applying",
        every time. A lock another controller took meanwhile stops the pass here."""
        every = timedelta(seconds=self.config.lease_seconds / 3)
        renewed = [self.clock.now()]

        def loaded(done: int, total: int) -> None:
            if progress is not None:
                progress("verify", done, total)
            now = self.clock.now()
            if renew and now - renewed[0] >= every:
                if not self.still_leader():
                    raise KneoError("lost the leader lock while loading", code=ErrorCode.not_leader)
                renewed[0] = now

        return loaded

    def still_leader(self) -> bool:
        return self.leadership.still_leader()

    # ---------------------------------------------------------------- status and loop

    def status(self) -> dict[str, Any]:
        """The controller status document as this controller sees it (``is_leader``)."""
        stored = self.store.registry.get_controller_status(self.config.name)
        lock = self.leadership.current()
        return status_dict(stored, lock, self.source.describe(), self_owner=self.owner)

    def run(
        self,
        stop: threading.Event,
        *,
        on_result: Callable[[ReconcileResult], None] | None = None,
        watch: bool = True,
    ) -> None:
        """Lead (a pass every ``interval``, sooner when woken) or stand by until ``stop`` is
        set; see :class:`~kneo.controller.loop.ControllerLoop`."""
        ControllerLoop(self, stop, on_result=on_result, watch=watch).run()

    def wait_for_wake(self, seconds: float) -> bool:
        """Block up to ``seconds`` for :meth:`request_reconcile`; whether it came."""
        return self._wake.wait(seconds)

    def clear_wake(self) -> None:
        self._wake.clear()

    # what the loop (kneo.controller.loop) asks of what it runs

    def reconcile_due(self) -> list[ReconcileResult]:
        """The loop's pass: this controller's one source is always due when woken."""
        return [self.reconcile_once()]

    def idle_seconds(self) -> float:
        """How long the leader waits between passes when nothing wakes it."""
        return self.config.interval

    def start_wakeups(self) -> ControllerWakeups:
        """Queued requests for this controller and releases of its lock wake it."""
        return self.store.controller.controller_wakeups(
            lambda _project, _name: self.request_reconcile(),
            name=self.config.name,
            poll_seconds=self.config.poll_seconds,
        )

    def watch_targets(self) -> dict[str, tuple[Path, Triggerable]]:
        """The local repository to watch for commits (none for a remote source)."""
        path = getattr(self.source, "watch_path", None)
        return {} if path is None else {"source": (path, self)}

    def close(self) -> None:
        """Close the source (GitPython's ``cat-file`` processes)."""
        close = getattr(self.source, "close", None)
        if callable(close):
            close()

    @property
    def last_result(self) -> ReconcileResult | None:
        return self._last
