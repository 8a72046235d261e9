"""Schedules a spec declares (``schedules:``), and the pure arithmetic of their ticks.

A schedule lives in the signed spec of a bundle, so it is judged, frozen, suspended and
pruned with the bundle: it ticks only while its revision is the active one in the registry
(:mod:`kneo.platform.schedules` does the I/O). Everything here is pure: given a schedule,
the last tick considered and ``now``, which ticks are due and which are dropped.

* ``cron`` (five fields, in ``timezone``; :mod:`cronsim` handles daylight saving) or
  ``every_seconds`` (ticks on multiples of the interval since the epoch, so every replica
  computes the same instants).
* ``catch_up``: after an outage, ticks missed are ``skip``-ped (none run), ``one`` (only the
  latest runs) or ``all`` (each runs, at most ``catch_up_limit`` of the latest).
* ``overlap``: while a run of the schedule is still live, a tick is ``skip``-ped, waits its
  turn (``queue``) or starts anyway (``allow``).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from kneo.names import NAME_PATTERN

CatchUp = Literal["skip", "one", "all"]
Overlap = Literal["skip", "queue", "allow"]

#: ticks one pass looks at per schedule at most (a bound on a pass's cost after a long outage)
MAX_SCAN = 10_000


class ScheduleSpec(BaseModel):
    """One ``schedules:`` entry: when runs start, with which input, and the two policies."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN, max_length=128)
    cron: str | None = Field(default=None, min_length=9, max_length=200)
    every_seconds: int | None = Field(default=None, ge=1, le=366 * 86400)
    timezone: str = "UTC"
    input: str = Field(default="", max_length=100_000)
    target: Literal["workflow", "agent"] = "workflow"
    metadata: dict[str, Any] = Field(default_factory=dict)
    catch_up: CatchUp = "one"
    catch_up_limit: int = Field(default=10, ge=1, le=1000)
    overlap: Overlap = "skip"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (an IANA name, e.g. UTC)") from exc
        return value

    @model_validator(mode="after")
    def _one_clock(self) -> ScheduleSpec:
        if (self.cron is None) == (self.every_seconds is None):
            raise ValueError("a schedule needs exactly one of cron and every_seconds")
        if self.cron is not None:
            try:
                CronSim(self.cron, datetime(2000, 1, 1, tzinfo=ZoneInfo(self.timezone)))
            except CronSimError as exc:
                raise ValueError(f"cron {self.cron!r} is not valid: {exc}") from exc
        return self


def ticks_after(schedule: ScheduleSpec, after: datetime) -> Iterator[datetime]:
    """The schedule's ticks strictly after ``after`` (UTC), in order, forever."""
    if schedule.every_seconds is not None:
        step = schedule.every_seconds
        epoch = int(after.timestamp())
        n = epoch // step + 1
        while True:
            yield datetime.fromtimestamp(n * step, UTC)
            n += 1
    local = after.astimezone(ZoneInfo(schedule.timezone))
    for tick in CronSim(schedule.cron or "", local):  # the validator: one of the two is set
        yield tick.astimezone(UTC)


def next_tick(schedule: ScheduleSpec, after: datetime) -> datetime:
    """The first tick strictly after ``after``."""
    return next(ticks_after(schedule, after))


def due_ticks(
    schedule: ScheduleSpec, last: datetime | None, now: datetime, *, grace: float = 30.0
) -> tuple[list[datetime], int, datetime | None]:
    """``(ticks to run, ticks dropped by the catch-up policy, the last tick due)`` in
    ``(last, now]``.

    ``last`` ``None`` (a schedule seen for the first time) counts from ``now``, so a new
    schedule never fires for the past. A tick at most ``grace`` seconds
    old is on time and always runs; older ones were missed (an outage, a freeze, a pause)
    and ``catch_up`` decides them: ``skip`` none, ``one`` the latest, ``all`` each of the
    latest ``catch_up_limit``."""
    start = last if last is not None else now
    due: list[datetime] = []
    for tick in ticks_after(schedule, start):
        if tick > now or len(due) >= MAX_SCAN:
            break
        due.append(tick)
    late = [t for t in due if (now - t).total_seconds() > grace]
    timely = due[len(late) :]
    if schedule.catch_up == "skip" or not late:
        kept_late: list[datetime] = []
    elif schedule.catch_up == "one":
        kept_late = [] if timely else late[-1:]
    else:
        kept_late = late[-schedule.catch_up_limit :]
    return kept_late + timely, len(late) - len(kept_late), due[-1] if due else None


__all__ = ["CatchUp", "Overlap", "ScheduleSpec", "due_ticks", "next_tick", "ticks_after"]
