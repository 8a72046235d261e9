"""The scheduler: one pass starts the runs a project's schedules have due.

A schedule is declared in a signed spec (:mod:`kneo.spec.schedules`) and ticks only while
that spec is the **active** revision of its bundle in an environment: promotion, policy,
rollback and prune decide which schedules exist, exactly as they decide which bundle runs.
A tick is held (not fired, not advanced past) while the bundle is suspended or a freeze
window of the environment's policy is in force; when the hold ends the schedule's
``catch_up`` policy decides the ticks it held. A person's pause holds it too, and a resume
counts from then.

Every replica may run passes: a tick starts a run only for the scheduler whose insert of
the tick's row (:meth:`kneo.store.schedules.SchedulesFacet.claim`) succeeds. The run is
started through :func:`kneo.platform.bundles.run_bundle`, so the project's limits, the
environment's admission and the approved-bundle rule apply to it as to any caller's, as
the actor ``schedule:<name>``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from kneo.controller.runtime import POLICY_METADATA_KEY
from kneo.errors import KneoError
from kneo.platform.bundles import BundleRunner, run_bundle
from kneo.platform.directory import ProjectDirectory
from kneo.policy.environment import FreezeWindow
from kneo.spec.schedules import ScheduleSpec, due_ticks, next_tick
from kneo.store.records import RevisionHead
from kneo.store.schedules import ScheduleKey, ScheduleState

log = logging.getLogger(__name__)

#: a claim whose run was never recorded after this long is marked ``lost``
LOST_AFTER_SECONDS = 120.0
#: how soon a paused schedule that came due is looked at again (a resume takes effect then)
PAUSED_RECHECK_SECONDS = 5.0
#: how often a service or worker process passes over its schedules
PASS_SECONDS = 1.0
#: stale claims are looked for every this many passes
LOST_EVERY = 60


@dataclass(frozen=True)
class Declared:
    """A schedule of an active revision."""

    spec: ScheduleSpec
    revision: int
    digest: str


@dataclass
class Scheduler:
    """Passes over one project's schedules (its platform's store view and runs)."""

    platform: BundleRunner
    #: a tick at most this old is on time; older ones were missed (``catch_up`` applies)
    grace: float = 30.0
    #: (bundle, env) -> (digest, its schedules): specs read once per promoted revision
    _specs: dict[tuple[str, str], tuple[str, tuple[ScheduleSpec, ...]]] = field(
        default_factory=dict
    )
    #: key -> (last tick considered, next tick): no arithmetic while nothing is due
    _next: dict[ScheduleKey, tuple[datetime | None, datetime]] = field(default_factory=dict)
    _heads: list[RevisionHead] | None = None
    _declared: dict[ScheduleKey, Declared] = field(default_factory=dict)
    #: when this process first saw a schedule with no state yet (no tick fired): it counts
    #: from then, and writes nothing until its first tick (10,000 new schedules: no writes)
    _seen: dict[ScheduleKey, datetime] = field(default_factory=dict)

    # ------------------------------------------------------------------ what is declared

    def declared(self) -> dict[ScheduleKey, Declared]:
        """Every schedule of the project's active revisions (one indexed read of the active
        heads; built again only when they changed)."""
        heads = self.platform.store.registry.list_revisions(status="active", heads=True)
        if heads == self._heads:
            return self._declared
        registry = self.platform.store.registry
        found: dict[ScheduleKey, Declared] = {}
        specs: dict[tuple[str, str], tuple[str, tuple[ScheduleSpec, ...]]] = {}
        for bundle, env, revision, digest, *_ in heads:
            pair = (bundle, env)
            cached = self._specs.get(pair)
            if cached is None or cached[0] != digest:
                stored = registry.get_revision(bundle, env, revision)
                cached = (digest, schedules_of(stored.spec))
            specs[pair] = cached
            for spec in cached[1]:
                found[(*pair, spec.name)] = Declared(spec, revision, digest)
        self._specs, self._heads, self._declared = specs, heads, found
        self._next = {k: v for k, v in self._next.items() if k in found}
        return found

    def holds(self, now: datetime) -> tuple[set[tuple[str, str]], dict[str, str]]:
        """``(suspended (bundle, env) pairs, env -> why it is frozen now)``."""
        store = self.platform.store
        suspended = set(store.registry.holds().suspensions)
        frozen: dict[str, str] = {}
        published = store.metadata.get_metadata(POLICY_METADATA_KEY, None) or {}
        for env, entry in published.items():
            for raw in (entry or {}).get("freeze") or ():
                try:
                    window = FreezeWindow.model_validate(raw)
                except ValidationError:
                    continue
                if window.active_at(now):
                    frozen[env] = window.describe()
        return suspended, frozen

    # ------------------------------------------------------------------ one pass

    def tick_once(self) -> dict[str, int]:
        """Start what is due now; counts of what each tick came to.

        An idle pass (nothing due, no tick waiting its turn) reads the active heads and the
        waiting ticks, nothing else: each schedule's next tick is known in memory.
        Another replica firing a tick first only makes this one read the state then."""
        store = self.platform.store
        now = store.clock.now()
        counts = {"started": 0, "skipped": 0, "waiting": 0, "failed": 0, "dropped": 0, "held": 0}
        declared = self.declared()
        if not declared:
            return counts
        waiting = store.schedules.waiting()  # each schedule's earliest waiting tick
        due = [
            key
            for key in declared
            if key in waiting or (key not in self._next or now >= self._next[key][1])
        ]
        if not due:
            return counts
        states = store.schedules.states()
        suspended, frozen = self.holds(now)
        for key in due:
            item, state = declared[key], states.get(key)
            last = state.last_tick if state is not None else None
            if last is None and (state is None or not state.paused):
                last = self._seen.setdefault(key, now)
            if state is not None and state.paused:  # looked at again in a few seconds
                self._next[key] = (last, now + timedelta(seconds=PAUSED_RECHECK_SECONDS))
                continue
            if (key[0], key[1]) in suspended or key[1] in frozen:
                counts["held"] += 1
                continue
            if key in waiting:
                self._start_waiting(key, item, waiting[key], counts)
            self._fire(key, item, last, now, counts)
        return counts

    def _fire(
        self,
        key: ScheduleKey,
        item: Declared,
        last: datetime | None,
        now: datetime,
        counts: dict[str, int],
    ) -> None:
        store = self.platform.store
        due, dropped, through = due_ticks(item.spec, last, now, grace=self.grace)
        counts["dropped"] += dropped
        for tick in due:
            if store.schedules.claim_tick(key, tick):
                counts[self._decide(key, item, tick)] += 1
        if through is not None:
            store.schedules.advance(key, through)
            last = through
        self._next[key] = (last, next_tick(item.spec, last if last is not None else now))

    def _decide(self, key: ScheduleKey, item: Declared, tick: datetime) -> str:
        """The outcome of a tick this scheduler claimed, by the overlap policy."""
        store = self.platform.store
        if item.spec.overlap != "allow":
            live = store.schedules.live_run(key)
            if live is not None:
                status = "waiting" if item.spec.overlap == "queue" else "skipped"
                store.schedules.record_tick(key, tick, status, detail=f"run {live} is still live")
                return status
        return self.start(key, item, tick)

    def _start_waiting(
        self, key: ScheduleKey, item: Declared, tick: datetime, counts: dict[str, int]
    ) -> None:
        """Overlap ``queue``: the oldest waiting tick starts once no run of it is live."""
        store = self.platform.store
        if store.schedules.live_run(key) is not None:
            return
        if store.schedules.record_tick(key, tick, "claimed", expected="waiting"):
            counts[self.start(key, item, tick)] += 1

    def start(
        self,
        key: ScheduleKey,
        item: Declared,
        tick: datetime,
        *,
        actor: str | None = None,
        raise_errors: bool = False,
    ) -> str:
        """Queue the tick's run on the active revision as ``actor`` (by default
        ``schedule:<name>``); record its outcome on the tick. A refusal (limits,
        admission) is recorded, and raised with ``raise_errors``."""
        store = self.platform.store
        meta = {
            **item.spec.metadata,
            "schedule": {"name": key[2], "tick": tick.isoformat(), "revision": item.revision},
        }
        try:
            result = run_bundle(
                self.platform,
                bundle=key[0],
                environment=key[1],
                input_text=item.spec.input,
                target=item.spec.target,
                async_mode=True,
                metadata=meta,
                actor=actor or f"schedule:{key[2]}",
            )
        except KneoError as exc:
            store.schedules.record_tick(key, tick, "failed", detail=f"{exc.code}: {exc.message}")
            if raise_errors:
                raise
            return "failed"
        store.schedules.record_tick(key, tick, "started", run_id=result.run_id)
        return "started"

    def mark_lost(self) -> int:
        """Ticks claimed by a scheduler that died before recording a run: marked ``lost``
        (never fired twice: a run may exist without its id on the tick)."""
        store = self.platform.store
        before = store.clock.now() - timedelta(seconds=LOST_AFTER_SECONDS)
        stale = store.schedules.ticks(status="claimed", before=before, limit=None)
        detail = "the scheduler stopped between claiming the tick and recording its run"
        return sum(
            store.schedules.record_tick(
                tick.key, tick.tick_at, "lost", detail=detail, expected="claimed"
            )
            for tick in stale
        )


class ScheduleLoop:
    """What a service or worker process runs every :data:`PASS_SECONDS`: a pass in its
    project, or in every project of its ``directory`` (a worker's); each project's
    :class:`Scheduler` is kept, so specs are read once per promoted revision."""

    def __init__(self, platform: BundleRunner, directory: ProjectDirectory | None = None) -> None:
        self.platform = platform
        self.directory = directory
        self._schedulers: dict[int, Scheduler] = {}
        self._passes = 0

    def _scheduler(self, project_id: int) -> Scheduler:
        found = self._schedulers.get(project_id)
        if found is None:
            platform = (
                self.platform if self.directory is None else self.directory.manager(project_id)
            )
            found = self._schedulers[project_id] = Scheduler(platform)
        return found

    def pass_once(self) -> dict[str, int]:
        """One pass over every project's schedules (a failing project is logged and the
        others go on); every :data:`LOST_EVERY` passes, stale claims are marked lost."""
        self._passes += 1
        totals: dict[str, int] = {}
        ids = (
            [self.platform.store.project_id]
            if self.directory is None
            else [e.id for e in self.directory.entries()]
        )
        for project_id in ids:
            try:
                scheduler = self._scheduler(project_id)
                for name, count in scheduler.tick_once().items():
                    totals[name] = totals.get(name, 0) + count
                if self._passes % LOST_EVERY == 0:
                    totals["lost"] = totals.get("lost", 0) + scheduler.mark_lost()
            except Exception:  # one project's failure must not stop the others' schedules
                log.exception("schedule pass failed in project %s", project_id)
                self._schedulers.pop(project_id, None)
        return totals


def schedules_of(spec: Mapping[str, Any] | None) -> tuple[ScheduleSpec, ...]:
    """The ``schedules:`` of a stored spec document (an invalid entry is left out and
    logged: the controller already validated the spec before it could become active)."""
    found: list[ScheduleSpec] = []
    for raw in (spec or {}).get("schedules") or ():
        try:
            found.append(ScheduleSpec.model_validate(raw))
        except ValidationError as exc:
            log.warning("schedule left out: %s", exc.errors()[0].get("msg"))
    return tuple(found)


def schedule_view(
    key: ScheduleKey, item: Declared, state: ScheduleState | None, now: datetime
) -> dict[str, Any]:
    """A schedule as the API and CLI show it: its definition, state and next tick."""
    last = state.last_tick if state is not None else None
    return {
        "bundle": key[0],
        "environment": key[1],
        "name": key[2],
        "revision": item.revision,
        "definition": item.spec.model_dump(mode="json"),
        "paused": bool(state and state.paused),
        "paused_by": state.paused_by if state is not None else None,
        "last_tick": last.isoformat() if last is not None else None,
        "next_tick": next_tick(item.spec, max(last, now) if last else now).isoformat(),
    }


__all__ = ["PASS_SECONDS", "Declared", "ScheduleLoop", "Scheduler", "schedule_view", "schedules_of"]
