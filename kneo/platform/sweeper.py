"""The sweeper: the daemon threads a service or worker process runs the sweeps on.

:class:`~kneo.platform.sweeps.Sweeps` decides what a sweep does (expired human requests, run
deadlines, stranded runs); the :class:`Sweeper` runs them on a schedule, in one project or in
every project of a directory, with the schedules' and the rollout judge's passes, the queue's
retention and the notification dispatcher beside them.

:func:`kneo.platform.notifications.start_dispatcher` is imported where a sweeper starts
(+9 ms: the receivers, the cards, the webhook clients), which every platform would pay.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, cast

from kneo.engine.child_step import CHILD_RUN
from kneo.logs import get_logger
from kneo.periodic import PeriodicTask
from kneo.platform.maintenance import retention_policy
from kneo.platform.rollout_judge import PASS_SECONDS as JUDGE_PASS_SECONDS
from kneo.platform.rollout_judge import RolloutJudge
from kneo.platform.sweeps import Sweeps, expired_continuations, timed_out_runs
from kneo.setting_groups import RetentionDays
from kneo.settings import Settings
from kneo.store import Store, TaskQuery

if TYPE_CHECKING:
    from kneo.platform.directory import ProjectDirectory
    from kneo.spec.project import ProjectContext

log = get_logger("kneo_serv.sweeps")

#: how often a process deletes finished queue records past their retention
QUEUE_PRUNE_SECONDS = 3600.0


def recovery_interval(lease_seconds: float) -> float:
    """How often a process looks for stranded runs: half a lease, between 1 and 30 s."""
    return max(1.0, min(30.0, lease_seconds / 2))


class Sweeper:
    """Daemon threads running the sweeps until :meth:`stop`.

    The stranded-run sweep always runs, every ``recovery`` seconds (see
    :func:`recovery_interval`); the timeout sweeps (human tasks, run deadlines) run every
    ``interval`` seconds when ``KNEO_SERV_SWEEP_INTERVAL_SECONDS`` is set, and are off by
    default (tests call the prune methods directly with a manual clock). Several sweepers on
    one database are safe: every write is a compare-and-set or under a lock.
    """

    def __init__(
        self,
        sweeps: Sweeps,
        interval: float | None,
        *,
        recovery: float | None = None,
        directory: ProjectDirectory | None = None,
    ) -> None:
        if interval is not None and interval <= 0:
            raise ValueError("sweep interval must be greater than zero")
        self.sweeps = sweeps
        #: the projects swept (``None``: the sweeps' own only)
        self.directory = directory
        self.interval = interval
        self.recovery = recovery
        self._tasks: list[PeriodicTask] = []
        #: the process's notification dispatcher, started with the sweeps (start_sweeper)
        self.dispatcher: Any = None
        #: the schedules' pass (:class:`kneo.platform.schedules.ScheduleLoop`), if any
        self.schedules: Callable[[], object] | None = None
        #: the rollout judge's pass (:class:`kneo.platform.rollout_judge.RolloutJudge`), if any
        self.rollout_judge: Callable[[], object] | None = None
        #: finished queue records (and sent or dead notifications) older than this many days
        #: are deleted every :data:`QUEUE_PRUNE_SECONDS` (``None``: never)
        self.queue_days: int | None = None

    def sweep_once(self) -> dict[str, int]:
        """One tick of the timeout sweeps, in every project of the :attr:`directory`: per
        project, one read of its expired tasks and one of its live runs' deadlines on its
        store's view; only a project with something due has its manager act (built then)."""
        if self.directory is None:
            children = self.sweeps.children
            return {
                "expired_human_tasks": self.sweeps.prune_expired_human_tasks(),
                "timed_out_runs": self.sweeps.prune_timed_out_runs(),
                "child_runs": children() if children is not None else 0,
            }
        root, now = self.sweeps.store, self.sweeps.clock.now()
        expired = timed_out = moved = 0
        for entry in self.directory.entries():
            try:
                store = root.for_project(entry.id)
                tasks, runs = expired_continuations(store, now), timed_out_runs(store, now)
                if tasks or runs:
                    sweeps: Sweeps = self.directory.manager(entry.id).sweeps
                    expired += sweeps.expire_human_tasks(tasks, now)
                    timed_out += sweeps.time_out_runs(runs, now)
                if store.tasks.list_continuations(
                    TaskQuery(kind=CHILD_RUN, limit=1, count=False)
                ).items:
                    moved += self.directory.manager(entry.id).sweeps.sweep_children()
            except Exception:  # one project's failure must not stop the others' sweep
                log.exception("timeout sweep failed in project %s", entry.name)
        return {"expired_human_tasks": expired, "timed_out_runs": timed_out, "child_runs": moved}

    def prune_queue(self) -> int:
        """Delete finished queue records older than :attr:`queue_days` (every process may:
        the delete is idempotent, and by index)."""
        store = self.sweeps.store
        window = RetentionDays(queue_days=self.queue_days)
        return int(store.maintenance.prune_retention(window, store.clock.now()).get("queue", 0))

    def start(self) -> Sweeper:
        if not self._tasks:
            if self.interval is not None:
                self._tasks.append(
                    PeriodicTask(
                        "kneo-sweeper",
                        self.interval,
                        self.sweep_once,
                        logger=log,
                        failure="timeout sweep failed",
                    )
                )
            if self.queue_days is not None:
                self._tasks.append(
                    PeriodicTask(
                        "kneo-queue-prune",
                        QUEUE_PRUNE_SECONDS,
                        self.prune_queue,
                        logger=log,
                        failure="queue retention failed",
                    )
                )
            if self.schedules is not None:
                self._tasks.append(
                    PeriodicTask(
                        "kneo-schedules",
                        1.0,
                        self.schedules,
                        logger=log,
                        failure="schedule pass failed",
                    )
                )
            if self.rollout_judge is not None:
                self._tasks.append(
                    PeriodicTask(
                        "kneo-rollout-judge",
                        JUDGE_PASS_SECONDS,
                        self.rollout_judge,
                        logger=log,
                        failure="rollout judge pass failed",
                    )
                )
            if self.recovery is not None:
                self._tasks.append(
                    PeriodicTask(
                        "kneo-recovery",
                        self.recovery,
                        self.sweeps.recover_stranded_runs,
                        logger=log,
                        failure="stranded-run sweep failed",
                    )
                )
        return self

    def stop(self, timeout: float | None = 10.0) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.stop(timeout)
        dispatcher, self.dispatcher = self.dispatcher, None
        if dispatcher is not None:
            dispatcher.stop(timeout)


class SweptPlatform(Protocol):
    """What :func:`start_sweeper` needs of a platform (``PlatformManager`` is one): a
    :class:`~kneo.platform.notifications.NotifyingPlatform` (restated here, so a process
    that never starts a sweeper never imports the notifications) with its sweeps."""

    @property
    def store(self) -> Store: ...

    @property
    def owner(self) -> str: ...

    @property
    def project(self) -> ProjectContext | None: ...

    @property
    def sweeps(self) -> Sweeps: ...

    @property
    def lease_seconds(self) -> float: ...


def start_sweeper(
    manager: SweptPlatform, settings: Settings, *, directory: ProjectDirectory | None = None
) -> Sweeper:
    """The background work a service or worker process runs: the sweeps, and the
    notification dispatcher (:func:`kneo.platform.notifications.start_dispatcher`), which
    stops with them; in every project of ``directory`` (a worker's) when given."""
    from kneo.platform.notifications import start_dispatcher  # cost: module docstring

    interval = getattr(settings, "sweep_interval_seconds", None)
    sweeper = Sweeper(
        manager.sweeps,
        float(interval) if interval else None,
        recovery=recovery_interval(manager.lease_seconds),
        directory=directory,
    )
    if hasattr(settings, "notifications"):
        sweeper.dispatcher = start_dispatcher(manager, settings, directory=directory)
    if hasattr(manager, "runs"):  # a platform that starts runs: its schedules tick here
        from kneo.platform.schedules import ScheduleLoop  # the controller's modules

        sweeper.schedules = ScheduleLoop(cast(Any, manager), directory).pass_once
        sweeper.rollout_judge = RolloutJudge(cast(Any, manager), directory).pass_once
    if hasattr(settings, "retention"):
        days = retention_policy(settings, manager.project).queue_days
        sweeper.queue_days = days
    return sweeper.start()
