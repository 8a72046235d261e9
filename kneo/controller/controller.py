"""The :class:`Controller`: one reconcile as ordered sub-steps, leader election, the loop.

A reconcile is fetch -> load desired state -> observe the registry -> plan -> apply ->
record status, stopping at the first step that fails (Flux's ordered sub-steps). Failures
are values, not exceptions: :meth:`Controller.reconcile_once` always returns a
:class:`ReconcileResult`, records the error in the controller status and, when the error
is new, as a ``controller.reconcile_failed`` audit event. Previously active revisions keep
serving whatever happens here.

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
from kneo.bundle.policy_approval import approval_path
from kneo.clock import Clock, SystemClock, utc_iso
from kneo.controller import incremental, operations, prune_gate, rollout_pass
from kneo.controller.apply import ACTOR, Applier, Outcome
from kneo.controller.config import ControllerConfig
from kneo.controller.leadership import LeaderLock, Leadership
from kneo.controller.loader import DesiredStateLoader
from kneo.controller.loop import ControllerLoop
from kneo.controller.model import ActionKind, Approvals, DesiredState, PlanOptions
from kneo.controller.observe import Snapshot, observe
from kneo.controller.operations import TRUST_METADATA_KEY
from kneo.controller.plan_actions import EMPTY_DESIRED_STATE
from kneo.controller.planner import plan
from kneo.controller.policy_record import PolicyOutcome, PolicyRecord, record_key
from kneo.controller.promotion import PromotionGate, close_task
from kneo.controller.ratchet import POLICY_NAME, PolicyRatchet, open_policy_task
from kneo.controller.runtime import POLICY_METADATA_KEY
from kneo.controller.source import Source
from kneo.controller.spec_checks import SpecChecker, default_spec_checker
from kneo.errors import ErrorCode, KneoError
from kneo.ids import new_id
from kneo.logs import get_logger
from kneo.policy.floors import NO_FLOORS, Floors
from kneo.projects import DEFAULT_PROJECT, DEFAULT_PROJECT_ID
from kneo.redaction import redact_text, reduce_url

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from kneo.controller.loader import PolicyHook
    from kneo.controller.model import Action, DesiredEnvironment
    from kneo.controller.source import TreeFile
    from kneo.controller.watch import Triggerable
    from kneo.store import ControllerStatus, LockRecord
    from kneo.store.contracts import ControllerStore
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
    record: PolicyRecord | None = None
    policy: PolicyOutcome | None = None

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
        store: ControllerStore,
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
                self._record(
                    result,
                    run.previous,
                    run.state if result.ok else None,
                    run.policy if result.ok else None,
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
        scope, change_seq = self._scope(previous, result.commit, result.stats, full)
        with self.store.metadata.metadata_snapshot(self._metadata_keys):
            self._load_and_apply(run, result, dry_run, progress, scope, change_seq)
        if not dry_run:
            run.stage = "rollouts"
            result.rollouts = rollout_pass.step_all(self.store, self.clock.now())

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
        assert result.commit is not None
        previous = run.previous
        run.record = PolicyRecord.from_dict(
            self.store.metadata.get_metadata(record_key(self.config.name))
        )
        run.stage = "load"
        desired = self.loader.load(
            self.source,
            result.commit,
            progress=self._loading(progress, renew=not dry_run),
            scope=None if scope is None else scope.names,
            bundle_count=None if scope is None else scope.bundle_count,
            policy=self._policy_hook(run, result.commit),
        )
        if scope is not None and desired.scope is None:
            result.stats.update(mode="full", full_reason=incremental.POLICY_CHANGED)
        result.problems = [
            p.to_dict() for p in (run.policy.problems if run.policy else ())
        ] + desired.findings(previous.details.get("problems") or () if previous else ())
        run.lap("load")
        run.stage = "observe"
        snapshot = observe(self.store, self.gate, desired.scope, desired.revisions.keys())
        run.lap("observe")
        run.stage = "plan"
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
        run.lap("plan")
        if dry_run:
            result.outcomes = [Outcome(a, False) for a in actions]
        else:
            run.stage = "apply"
            if not self.still_leader():
                raise KneoError("lost the leader lock before applying", code=ErrorCode.not_leader)
            result.outcomes = self._apply(desired, snapshot, actions, progress)
            self.applier.withdraw_prunes(previous, result.prunes, desired.scope)
            self._publish_run_policies(desired)
            if run.policy is not None:
                self._record_policy(run.record, run.policy)
            run.lap("apply")
            run.state = incremental.next_state(
                self._saved_state(previous),
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
        stats = self.loader.last_stats
        result.stats.update(files=stats.files, verified=stats.judged, cached=stats.cached)
        result.stats["seconds"] = run.timings

    def _policy_hook(self, run: _Pass, commit: str) -> PolicyHook:
        """The loader's step from the commit's environments to those in force."""

        def in_force(
            candidates: dict[str, DesiredEnvironment], files: Mapping[str, TreeFile]
        ) -> tuple[dict[str, DesiredEnvironment], bool]:
            def read_approval(environment: str) -> bytes | None:
                found = files.get(approval_path(environment))
                return None if found is None else self.source.read_blob(found.blob_sha)

            run.policy = self.ratchet.decide(
                run.record,
                candidates,
                commit=commit,
                now=self.clock.now(),
                read_approval=read_approval,
                decisions=self._policy_decisions,
            )
            return run.policy.environments, run.policy.changed

        return in_force

    def _policy_decisions(self, environment: str, subject: str) -> Approvals:
        decided = self.store.registry.list_promotion_approvals(POLICY_NAME, environment, subject)
        return Approvals(
            frozenset(a.approver for a in decided if a.decision == "approved"),
            frozenset(a.approver for a in decided if a.decision == "rejected"),
        )

    def _record_policy(self, stored: PolicyRecord | None, outcome: PolicyOutcome) -> None:
        """Store the policy in force when it changed, with its audit events, and open (or
        close) the approval tasks of changes waiting for people, in one transaction."""
        record = outcome.record.to_dict()
        changed = stored is None or stored.to_dict() != record
        tasks = [p for p in outcome.record.pending.values() if p.task]
        if not (changed or outcome.events or tasks or outcome.closed_tasks):
            return
        with self.store.transaction() as tx:
            if changed:
                tx.set_metadata(record_key(self.config.name), record)
            for event, payload in outcome.events:
                tx.add_audit(event, actor=ACTOR, payload=payload)
            for pending in tasks:
                open_policy_task(tx, pending, now=self.clock.now())
            for cid in outcome.closed_tasks:
                close_task(tx, cid, "superseded")

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

    @staticmethod
    def _saved_state(previous: ControllerStatus | None) -> incremental.ReconcileState | None:
        details = previous.details if previous is not None else {}
        return incremental.ReconcileState.from_dict(details.get("reconciled"))

    def _scope(
        self, previous: ControllerStatus | None, commit: str, stats: dict[str, Any], full: bool
    ) -> tuple[incremental.Scope | None, int]:
        """The bundles this pass must plan (``None``: all of them), and the registry change
        number to save; ``stats`` learns which and why (see :mod:`kneo.controller.incremental`).
        A dry run (``previous`` None) is always a full pass."""
        if previous is None:
            stats.update(mode="full", full_reason="dry_run")
            return None, 0
        saved = self._saved_state(previous)
        reason = (
            incremental.REQUESTED
            if full
            else incremental.full_reason(saved, self._fingerprint(), self.clock.now())
        )
        change_seq, changed = self.store.registry.registry_changes_since(
            saved.change_seq if saved is not None and reason is None else None
        )
        scope = None
        if saved is not None and reason is None:
            files = (
                [] if saved.commit == commit else self.source.changed_paths(saved.commit, commit)
            )
            also = changed | self.store.registry.pending_promotion_names()
            scope, reason = incremental.scope_of(saved, files, also)
        if scope is None:
            stats.update(mode="full", full_reason=reason)
        else:
            stats.update(mode="incremental", scope=len(scope.names))
        return scope, change_seq

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

    def _publish_run_policies(self, desired: DesiredState) -> None:
        """Record each environment's ``runs.require_approved_bundle``, ``resources:`` and
        ``budgets:`` (:func:`kneo.policy.environment.run_limits`) for the runtime, and
        today's trust for rollbacks (:func:`kneo.controller.operations.publish_trust`).

        Written only when it changes (a repeated commit writes nothing). An environment whose
        file is now missing or invalid keeps its last known rule, so breaking or deleting a
        file never opens an environment to ad-hoc specs.
        """
        usable = {name: env for name, env in desired.environments.items() if not env.problems}
        stored = self.store.metadata.get_metadata(POLICY_METADATA_KEY, None) or {}
        current = {**stored, **{name: env.run_rules() for name, env in usable.items()}}
        if current != stored:
            with self.store.transaction() as tx:
                tx.set_metadata(POLICY_METADATA_KEY, current)
        trust = {name: env.trust() for name, env in usable.items()}
        operations.publish_trust(self.store, self.loader.keyring, trust)

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

    def _record(
        self,
        result: ReconcileResult,
        previous: ControllerStatus | None,
        state: incremental.ReconcileState | None,
        run_policy: PolicyOutcome | None = None,
    ) -> None:
        """Controller status every time, with the reconcile ``state`` to continue from (the
        last one kept when this pass failed); an audit event when the error or problems
        change."""
        error_text = f"{result.error['code']}: {result.error['message']}" if result.error else None
        try:
            previous = previous or self.store.registry.get_controller_status(self.config.name)
            saved = previous.details.get("reconciled")
            details = {
                "source": self.source.describe(),
                "leader": self.owner,
                # what any API replica needs to take webhooks for this controller, and its
                # timing (a variable's name, never a secret)
                "webhook_secret_env": self.config.webhook_secret_env,
                "interval": self.config.interval,
                "lease_seconds": self.config.lease_seconds,
                "poll_seconds": self.config.poll_seconds,
                "counts": result.counts(),
                "problems": result.problems if result.ok else previous.details.get("problems"),
                "stats": result.stats,
                "last_error_stage": result.error["stage"] if result.error else None,
                "last_success_at": utc_iso(result.started_at)
                if result.ok
                else previous.details.get("last_success_at"),
                "reconciled": state.to_dict() if state is not None else saved,
                "policy": run_policy.status()
                if run_policy is not None
                else previous.details.get("policy"),
                "prunes": result.prunes if result.ok else previous.details.get("prunes"),
            }
            with self.store.transaction() as tx:
                fields: dict[str, Any] = {
                    "last_reconcile_started_at": result.started_at,
                    "last_reconcile_duration_seconds": result.duration_seconds,
                    "last_error": error_text,
                    "details": details,
                }
                if result.commit:
                    fields["last_fetched_commit"] = result.commit
                tx.set_controller_status(name=self.config.name, **fields)
                if error_text and error_text != previous.last_error:
                    tx.add_audit(
                        "controller.reconcile_failed",
                        actor=ACTOR,
                        payload={"commit": result.commit, **(result.error or {})},
                    )
                if (
                    result.ok
                    and result.problems
                    and result.problems != previous.details.get("problems")
                ):
                    tx.add_audit(
                        "controller.problems",
                        actor=ACTOR,
                        payload={"commit": result.commit, "problems": result.problems},
                    )
        except Exception as exc:  # e.g. the database is down; the next pass retries
            log.warning("recording controller status failed: %s", exc)

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
            self.config.name, self.request_reconcile, poll_seconds=self.config.poll_seconds
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


def status_dict(
    stored: ControllerStatus,
    lock: LockRecord | None,
    source: str | None,
    *,
    self_owner: str | None = None,
) -> dict[str, Any]:
    """The controller status document shared by the CLI and the service."""
    shown = source or stored.details.get("source")
    return {
        # reduced again: a row written before sources were (a URL with its token)
        "source": reduce_url(shown) if isinstance(shown, str) else None,
        "last_fetched_commit": stored.last_fetched_commit,
        "last_reconcile_started_at": utc_iso(stored.last_reconcile_started_at),
        "last_reconcile_duration_seconds": stored.last_reconcile_duration_seconds,
        "last_error": redact_text(stored.last_error) if stored.last_error else None,
        "last_success_at": stored.details.get("last_success_at"),
        "counts": stored.details.get("counts", {}),
        "problems": stored.details.get("problems", []),
        "stats": stored.details.get("stats", {}),
        # each environment's policy in force and the change waiting, if any (issue 53)
        "policy": stored.details.get("policy") or {},
        "prunes": stored.details.get("prunes") or [],  # removals held (prune_gate)
        "timing": {
            key: stored.details.get(key) for key in ("interval", "lease_seconds", "poll_seconds")
        },
        "leader": lock.owner if lock is not None else None,
        "leader_expires_at": utc_iso(lock.expires_at) if lock is not None else None,
        "is_leader": bool(lock is not None and self_owner and lock.owner == self_owner),
    }
