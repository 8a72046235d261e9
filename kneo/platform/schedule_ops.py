"""What people do with schedules (API, CLI and console): list, get, pause, resume, trigger.

All act in the platform's project (its store view reads and writes only that project's
rows), on schedules of its active revisions: a schedule no active revision declares is 404
``not_found``. A manual trigger starts the run as the caller (audited as them), through the
same admission and limits as any bundle run, and is recorded as a tick of its own.
"""

from __future__ import annotations

from typing import Any

from kneo.errors import NotFound
from kneo.names import check_name
from kneo.platform.bundles import BundleRunner
from kneo.platform.schedules import Declared, Scheduler, schedule_view, schedules_of
from kneo.store.schedules import ScheduleKey


def _declared(platform: BundleRunner, key: ScheduleKey) -> Declared:
    check_name(key[0], kind="bundle name", field="bundle")
    check_name(key[1], kind="environment")
    check_name(key[2], kind="schedule name", field="name")
    found = Scheduler(platform).declared().get(key)
    if found is None:
        raise NotFound(
            f"no active revision of bundle {key[0]!r} in {key[1]!r} declares a schedule {key[2]!r}",
            resource="schedule",
        )
    return found


def list_schedules(platform: BundleRunner, environment: str | None = None) -> list[dict[str, Any]]:
    """Every schedule of the project's active revisions, with its state and next tick."""
    store = platform.store
    now = store.clock.now()
    states = store.schedules.states()
    return [
        schedule_view(key, item, states.get(key), now)
        for key, item in sorted(Scheduler(platform).declared().items())
        if environment is None or key[1] == environment
    ]


def bundle_schedules(platform: BundleRunner, bundle: str, environment: str) -> list[dict[str, Any]]:
    """The schedules of one bundle's active revision in one environment, as
    :func:`list_schedules` shows them (only that revision's spec is read)."""
    store = platform.store
    active = store.registry.get_active(bundle, environment)
    if active is None:
        return []
    states, now = store.schedules.states(), store.clock.now()
    views = []
    for spec in schedules_of(active.spec):
        key = (bundle, environment, spec.name)
        item = Declared(spec, active.revision, active.digest)
        views.append(schedule_view(key, item, states.get(key), now))
    return views


def get_schedule(platform: BundleRunner, key: ScheduleKey, *, ticks: int = 20) -> dict[str, Any]:
    """One schedule, with its latest ``ticks`` (newest first)."""
    item = _declared(platform, key)
    store = platform.store
    view = schedule_view(key, item, store.schedules.states().get(key), store.clock.now())
    view["ticks"] = [
        {
            "tick": tick.tick_at.isoformat(),
            "status": tick.status,
            "run_id": tick.run_id,
            "detail": tick.detail,
        }
        for tick in store.schedules.ticks(key, limit=ticks)
    ]
    return view


def set_paused(
    platform: BundleRunner, key: ScheduleKey, paused: bool, *, actor: str
) -> dict[str, Any]:
    """Pause (or resume) a schedule; audited. A resume counts from now."""
    _declared(platform, key)
    store = platform.store
    store.schedules.set_paused(key, paused, actor)
    with store.transaction() as tx:
        tx.add_audit(
            "schedule.paused" if paused else "schedule.resumed",
            actor=actor,
            payload={"bundle": key[0], "environment": key[1], "schedule": key[2]},
        )
    return get_schedule(platform, key, ticks=0)


def trigger(platform: BundleRunner, key: ScheduleKey, *, actor: str) -> dict[str, Any]:
    """Start one run of the schedule now, as ``actor`` (whatever its overlap policy says:
    a person asked for it); the tick it records is ``now``."""
    item = _declared(platform, key)
    tick = platform.store.clock.now()
    if not platform.store.schedules.claim_tick(key, tick):
        raise NotFound("this instant was just triggered; try again", resource="schedule")
    status = Scheduler(platform).start(key, item, tick, actor=actor, raise_errors=True)
    found = next(t for t in platform.store.schedules.ticks(key, limit=50) if t.tick_at == tick)
    return {"status": status, "tick": tick.isoformat(), "run_id": found.run_id,
            "detail": found.detail}  # fmt: skip


__all__ = ["bundle_schedules", "get_schedule", "list_schedules", "set_paused", "trigger"]
