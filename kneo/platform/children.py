"""Workflows that call workflows: a ``kind: workflow`` step's child run, started, waited on
and reported back to its parent (docs/triggers.md, "Child runs").

The step pauses its run with a request of kind ``child_run``
(:mod:`kneo.engine.child_step`); that pause is the durable wait. Then, outside the pause's
transaction:

* **start**: the child's run id is a digest of the parent's run id and the request's id,
  fixed by the pause already committed; the child is queued with that id (a second start,
  from another process or after a restart, is refused by the key: never two children). It
  is a bundle run like any other: the bundle's active revision in the parent's project
  and environment (the parent's store view reads no other project's registry), through
  the same admission, limits and approval gates. A child that cannot start fails the step.
* **report**: when the child ends, its outcome is recorded on the parent's request as the
  platform (``provided`` with the output, ``rejected`` with the error), and the parent goes
  on. A person's decision on such a request is refused (:mod:`kneo.platform.decisions`).
* **cancel**: cancelling the parent cancels its live children.

Each happens right after the outcome that calls for it, in the process that wrote it; a
process that died in between leaves the wait pending, and :meth:`Children.sweep` (the
sweeps' pass) starts the missing child or reports the ended one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from kneo.engine.child_step import CHILD_RUN
from kneo.engine.human import Decision
from kneo.errors import Conflict, ErrorCode, InvalidRequest, KneoError, NotFound
from kneo.lifecycle import TERMINAL, RunStatus
from kneo.platform.child_links import (
    CHILD_ACTOR,
    PARENT_KEY,
    child_run_id,
    parent_of,
    waits,
)
from kneo.platform.results import RunResult
from kneo.store import RunRecord, TaskQuery

if TYPE_CHECKING:
    from kneo.platform.decisions import Decisions
    from kneo.platform.runs import Runs
    from kneo.settings import Settings
    from kneo.store import Store

log = logging.getLogger(__name__)


class ChildPlatform(Protocol):
    """What the child runs' moves use of a project's platform."""

    @property
    def store(self) -> Store: ...
    @property
    def runs(self) -> Runs: ...
    @property
    def decisions(self) -> Decisions: ...
    @property
    def settings(self) -> Settings: ...


class Children:
    """A project's platform's child runs: its driver calls :meth:`after_outcome` once each
    outcome is committed and :meth:`after_cancel` once a cancel is."""

    def __init__(self, manager: ChildPlatform) -> None:
        self.manager = manager

    # ------------------------------------------------------------------ hooks

    def after_outcome(self, run: RunRecord) -> RunResult | None:
        """Start the children a pause waits on; report an ended child to its parent.
        Returns the run's result when a child refused at once continued it. Never raises:
        what fails here is done again by :meth:`sweep`."""
        continued = None
        try:
            for request in waits(run):
                continued = self._start(run, request) or continued
            if run.status in TERMINAL and parent_of(run) is not None:
                self._report(run)
        except Exception:  # the outcome is committed; the sweep finishes what failed here
            log.exception("child runs of %s: left to the sweep", run.run_id)
        return continued

    def after_cancel(self, before: RunRecord, cancelled: RunRecord) -> None:
        """A cancelled run's live children are cancelled; a cancelled child fails its
        parent's step."""
        for request in waits(before):
            child_id = child_run_id(before.run_id, request["request_id"])
            try:
                child = self.manager.store.runs.get_run(child_id)
                if child.status not in TERMINAL:
                    self.manager.runs.cancel(child_id, actor=f"run:{before.run_id}")
            except (NotFound, Conflict):
                continue  # never started, or ended meanwhile
        self.after_outcome(cancelled)

    def sweep(self, limit: int = 100) -> int:
        """Waits a process left unfinished (it died between a pause and its child's start,
        or between a child's end and its report): started or reported now. Returns how
        many waits it moved."""
        moved = 0
        page = self.manager.store.tasks.list_continuations(
            TaskQuery(kind=CHILD_RUN, limit=limit, count=False)
        )
        for cont in page.items:
            try:
                parent = self.manager.store.runs.get_run(str(cont.run_id))
            except NotFound:
                continue
            for request in waits(parent):
                child_id = child_run_id(parent.run_id, request["request_id"])
                try:
                    child = self.manager.store.runs.get_run(child_id)
                except NotFound:
                    self._start(parent, request)
                    moved += 1
                    continue
                if child.status in TERMINAL:
                    self._report(child)
                    moved += 1
        return moved

    # ------------------------------------------------------------------ the three moves

    def _start(self, parent: RunRecord, request: Mapping[str, Any]) -> RunResult | None:
        from kneo.platform.bundles import run_bundle  # import cycle: bundles imports runs

        context = request.get("context") or {}
        bundle = str(context.get("bundle") or "")
        request_id = str(request["request_id"])
        child_id = child_run_id(parent.run_id, request_id)
        link = {
            "run_id": parent.run_id,
            "continuation_id": (parent.state or {}).get("continuation_id"),
            "request_id": request_id,
            "step_id": context.get("step_id") or request.get("step_id"),
        }
        try:
            if not parent.environment:
                raise InvalidRequest(
                    "a workflow step starts a bundle of the run's environment: this run has "
                    "none (start it as a bundle run)",
                    field="environment",
                )
            run_bundle(
                self.manager,
                bundle=bundle,
                environment=parent.environment,
                input_text=str(context.get("input") or ""),
                async_mode=True,
                metadata={PARENT_KEY: link},
                actor=f"run:{parent.run_id}",
                session_id=parent.session_id,
                run_id=child_id,
            )
        except KneoError as exc:
            if exc.code == ErrorCode.already_exists:
                return None  # started already (by this wait, in another process or before)
            reason = f"{exc.code}: {exc.message}"
            return self._decide(link, None, Decision(request_id, "rejected", reason), None)
        audit = {"child_run_id": child_id, "bundle": bundle, "step_id": link["step_id"]}
        with self.manager.store.transaction() as tx:
            tx.add_audit("run.child_started", actor=CHILD_ACTOR, run_id=parent.run_id,
                         payload=audit)  # fmt: skip
        return None

    def _report(self, child: RunRecord) -> None:
        link = dict((child.metadata or {}).get(PARENT_KEY) or {})
        request_id = str(link.get("request_id") or "")
        if child.status == RunStatus.SUCCEEDED:
            output = child.output_text or ""
            decision = Decision(request_id, "provided", self._cut(output) or "(no output)")
        else:
            error = child.error or {}
            reason = f"{child.status}: {error.get('message') or error.get('code') or 'no error'}"
            decision = Decision(request_id, "rejected", self._cut(reason))
            output = None
        self._decide(link, child, decision, output)

    def _decide(
        self,
        link: Mapping[str, Any],
        child: RunRecord | None,
        decision: Decision,
        output: str | None,
    ) -> RunResult | None:
        cid = link.get("continuation_id")
        if not cid:
            return None
        metadata = {
            "child_run_id": child.run_id if child is not None else None,
            "child_status": child.status if child is not None else "not_started",
            "step_id": link.get("step_id"),
            "output": output,
        }
        try:
            return self.manager.decisions.decide_for_child(str(cid), decision, metadata)
        except (NotFound, Conflict) as exc:  # reported already, or the parent ended
            log.info("child outcome not recorded on %s: %s", cid, exc.code)
            return None

    def _cut(self, text: str) -> str:
        return text[: self.manager.settings.limits.max_human_content_chars]


__all__ = ["ChildPlatform", "Children"]
