"""Who may reconcile: the leader lock a controller runs under.

:class:`LeaderLock` is a store lock (``controller:<name>``) with an owner and a lease: the
controller that holds it reconciles, the others stand by, and a dead leader's lease lapses
to a standby. One leader reconciles every project's source
(:mod:`kneo.controller.projects`): each project's :class:`~kneo.controller.controller.
Controller` then leads through :class:`SharedLeadership`, the host lock's holder's, and
never takes a lock of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from kneo.logs import get_logger

if TYPE_CHECKING:
    from kneo.store import LockRecord
    from kneo.store.api import Store

log = get_logger("kneo.controller")


class Leadership(Protocol):
    """What a controller asks of its leadership."""

    @property
    def name(self) -> str:
        """The lock's name (what status documents show the leader of)."""
        ...

    @property
    def owner(self) -> str: ...

    @property
    def is_leader(self) -> bool: ...

    def try_lead(self) -> bool:
        """Take or renew the lock; ``False`` while another live owner holds it."""
        ...

    def still_leader(self) -> bool:
        """Renew the lock held; ``False`` if it lapsed to another owner."""
        ...

    def step_down(self) -> None: ...

    def lock_free(self) -> bool: ...

    def current(self) -> LockRecord | None:
        """The lock as it stands (``None``: nobody holds it)."""
        ...


class LeaderLock:
    """A store lock held for ``lease_seconds`` at a time and renewed by its owner.

    ``released`` is called after the lock is released, to wake the standbys at once (the
    controller's ``NOTIFY``)."""

    def __init__(
        self,
        store: Store,
        name: str,
        owner: str,
        lease_seconds: float,
        *,
        released: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self._name = name
        self._owner = owner
        self.lease_seconds = lease_seconds
        self._released = released
        self._leader = False

    @property
    def name(self) -> str:
        return self._name

    @property
    def owner(self) -> str:
        return self._owner

    @property
    def is_leader(self) -> bool:
        return self._leader

    def try_lead(self) -> bool:
        try:
            self._leader = bool(
                self.store.locks.acquire_lock(self._name, self._owner, self.lease_seconds)
            )
        except Exception as exc:  # the database is unreachable: we cannot lead
            log.warning("leader election failed: %s", exc)
            self._leader = False
        return self._leader

    def still_leader(self) -> bool:
        try:
            self._leader = bool(
                self.store.locks.renew_lock(self._name, self._owner, self.lease_seconds)
            )
        except Exception:
            self._leader = False
        return self._leader

    def step_down(self) -> None:
        """Release the lock (when held) and wake the standbys, so one takes over at once
        instead of after the lease."""
        if self._leader:
            try:
                if self.store.locks.release_lock(self._name, self._owner) and self._released:
                    self._released()
            except Exception as exc:
                log.warning("releasing the leader lock failed: %s", exc)
        self._leader = False

    def lock_free(self) -> bool:
        """Whether no live owner holds the lock (a standby's cheap read before it tries)."""
        try:
            return self.store.locks.get_lock(self._name) is None
        except Exception as exc:
            log.warning("reading the leader lock failed: %s", exc)
            return False

    def current(self) -> LockRecord | None:
        try:
            return self.store.locks.get_lock(self._name)
        except Exception:
            return None


class SharedLeadership:
    """A project source's leadership: the host lock's (``parent``). Taking it is asking
    whether the parent leads (no database call); renewing it renews the parent's lock, as a
    long load or apply must; stepping down is the parent's alone."""

    def __init__(self, parent: Leadership) -> None:
        self.parent = parent

    @property
    def name(self) -> str:
        return self.parent.name

    @property
    def owner(self) -> str:
        return self.parent.owner

    @property
    def is_leader(self) -> bool:
        return self.parent.is_leader

    def try_lead(self) -> bool:
        return self.parent.is_leader

    def still_leader(self) -> bool:
        return self.parent.still_leader()

    def step_down(self) -> None:
        """The parent's to do: a project's pass never releases the host lock."""

    def lock_free(self) -> bool:
        return self.parent.lock_free()

    def current(self) -> LockRecord | None:
        return self.parent.current()
