"""The inbox: the pending human tasks a person may list, and one task with its context.

Reads only: deciding is :class:`kneo.platform.decisions.Decisions`'. A listed task is its
``list_row``, written with the task (:mod:`kneo.store.tasks.inbox`); one task is read with its
bodies, who alone may decide each request when the environment binds assignees, a
promotion's approvals so far, and on request the context a decider reads.

:func:`kneo.platform.registry.promotion_tally` is imported where a promotion task is read
(+42 ms with the bundle's cryptography), which a platform that only runs runs never needs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, get_args

from kneo.clock import Clock
from kneo.errors import InvalidRequest, KneoError, NotFound
from kneo.lifecycle import TaskStatus, request_status
from kneo.platform.assignments import AssignmentRule
from kneo.platform.context import task_context
from kneo.platform.driver import RunDriver
from kneo.platform.results import task_view
from kneo.platform.tasks import with_bodies, with_bodies_many
from kneo.settings import Settings
from kneo.spec.models import RequestKind
from kneo.spec.suggest import one_of
from kneo.store import ContinuationRecord, RunRecord, Store, TaskQuery
from kneo.store.tasks.inbox import input_preview, listed

#: the oldest age a task filter may ask for (100 years; a larger one overflows a date)
MAX_AGE_SECONDS = 100 * 365 * 86_400
#: Where each assignee's pending count stops (``include=counts``; shown "N+" beyond) when
#: ``KNEO_SERV_MAX_LIST_COUNT`` sets no cap: a per-assignee count is a summary, not a
#: listing's ``total``, and visits every pending task of every assignee uncapped.
ASSIGNEE_COUNT_CAP = 1_000
#: The inbox a caller that asks nothing more lists: pending tasks, oldest first, a hundred.
INBOX = TaskQuery(limit=100)
#: What ``kind`` filters on: a request's kind, or ``promotion`` for promotions.
TASK_KINDS = (*get_args(RequestKind), "promotion")


@dataclass(kw_only=True, eq=False, repr=False)
class Inbox:
    """The human tasks as people read them: the inbox query and one task."""

    store: Store
    clock: Clock
    settings: Settings
    driver: RunDriver
    #: the rule of an environment's assignments (:meth:`Decisions.assignment_rule`): whether
    #: a request's assignee alone may decide it, and who that is
    assignment_rule: Callable[[str | None], AssignmentRule]

    def list_human_tasks(
        self,
        query: TaskQuery = INBOX,
        *,
        older_than_seconds: float | None = None,
        by_assignee: bool = True,
        show_personal: bool = False,
        counts_cap: int | None = None,
    ) -> dict[str, Any]:
        """Pending tasks of ``query`` (:class:`~kneo.store.TaskQuery`: by run, workflow kind,
        workflow (or promoted bundle) name, environment, assignee, request kind
        (``promotion``: promotions), escalation and words; oldest or newest first, or by
        deadline, ``expiring``, ``expiring_last``: the undated after either), and created
        more than ``older_than_seconds`` ago (the platform's clock's).
        ``next_cursor`` passed back as ``cursor`` gives the next page (keyset paging).
        ``count`` adds ``total``, ``by_assignee`` the count of pending requests per assignee
        (``"(unassigned)"`` for none) as ``counts_by_assignee``; each is ``None`` when not
        asked for. Like ``total``, each assignee's count is exact up to ``counts_cap``
        (default ``KNEO_SERV_MAX_LIST_COUNT``): beyond it the count shows the cap and the
        assignee is in ``counts_capped``, so counting costs at most (assignees) x (cap)
        index rows, not every pending task.
        ``show_personal`` for a decider. ``q`` keeps the tasks holding every word of it in
        their prompts, run input, workflow (or bundle) name or assignees
        (:mod:`kneo.store.tasks.search`). Each task has ``input_preview``, the first words of its
        run's input."""
        one_of(query.kind, TASK_KINDS, "kind")
        if older_than_seconds is not None:
            query = replace(query, older_than=self._created_before(older_than_seconds))
        page = self.store.tasks.list_continuations(query)
        counts, capped = self._assignee_counts(counts_cap) if by_assignee else (None, None)
        return {
            "tasks": self._list_views(page.items, show_personal),
            "count": len(page.items),
            "total": page.total,
            "total_capped": page.total_capped,
            "limit": page.limit,
            "offset": page.offset,
            "next_cursor": page.next_cursor,
            "counts_by_assignee": counts,
            "counts_capped": capped,
        }

    def _created_before(self, older_than_seconds: float | None) -> datetime | None:
        """The moment a task must be created before to be ``older_than_seconds`` old."""
        if older_than_seconds is None:
            return None
        if not 0 <= older_than_seconds <= MAX_AGE_SECONDS:
            raise InvalidRequest(
                f"older_than_seconds must be between 0 and {MAX_AGE_SECONDS}",
                field="older_than_seconds",
            )
        return self.clock.now() - timedelta(seconds=older_than_seconds)

    def _assignee_counts(self, counts_cap: int | None) -> tuple[dict[str, int], list[str]]:
        """Pending requests per assignee, each count cut at the cap, and who was cut."""
        top = counts_cap or self.settings.limits.max_list_count or ASSIGNEE_COUNT_CAP
        pending = self.store.tasks.pending_counts_by_assignee(top)
        counts = {a or "(unassigned)": min(n, top) for a, n in pending.items()}
        capped = sorted(a or "(unassigned)" for a, n in pending.items() if n > top)
        return counts, capped

    def _list_views(
        self, tasks: Sequence[ContinuationRecord], show_personal: bool
    ) -> list[dict[str, Any]]:
        """The list's views of ``tasks``: each from its ``list_row``, written with the task
        (:mod:`kneo.store.tasks.inbox`); a task without one (written by an older version, or with
        a body missing) is built from its run's state as the task page builds it."""
        unlisted = [c for c in tasks if c.list_row is None]
        states = self.store.runs.run_states([c.run_id for c in unlisted if c.run_id])
        built = {c.continuation_id: c for c in with_bodies_many(self.store, unlisted, states)}
        views = []
        for cont in tasks:
            if cont.list_row is not None:
                row = listed(cont.list_row, show_personal=show_personal)
                view = task_view(cont, show_personal=show_personal, shown=list(row["requests"]))
                view["input_preview"] = row["input_preview"]
            else:
                view = task_view(built[cont.continuation_id], show_personal=show_personal)
                text = str((states.get(cont.run_id or "") or {}).get("input_text") or "")
                view["input_preview"] = input_preview(text, show_personal=show_personal)
            views.append(view)
        return views

    def get_human_task(
        self,
        continuation_id: str,
        *,
        show_personal: bool = False,
        include_context: bool = False,
    ) -> dict[str, Any]:
        """One task with every request (answered ones with who decided and when); a
        promotion task also with its approvals so far. ``show_personal`` for a decider.
        ``include_context`` adds ``context``: the run's input, the agents' conversations up
        to the pause, the workflow position, earlier decisions and each request's own
        context (:func:`kneo.platform.context.task_context`); ``None`` for a task of no
        run (a promotion) or whose run is gone."""
        cont = self.store.tasks.get_continuation(continuation_id)
        run = self._run_of(cont) if include_context else None
        task = with_bodies(self.store, cont, state=run.state if run is not None else None)
        view = task_view(task, pending_only=False, show_personal=show_personal)
        rule = self.assignment_rule(task.environment)
        for request in view.get("requests", []) if rule.binding else []:
            if request_status(request) is TaskStatus.PENDING:  # who alone may decide it
                request["deciders"] = list(rule.deciders(request.get("assignee")))
        if task.workflow_kind == "promotion":
            from kneo.platform.registry import promotion_tally

            view["promotion"] = promotion_tally(
                self.store.registry, task, show_personal=show_personal
            )
        if include_context:
            view["context"] = self._context(run, task.requests, show_personal)
        return view

    def _run_of(self, cont: ContinuationRecord) -> RunRecord | None:
        if cont.run_id is None:
            return None
        try:
            return self.store.runs.get_run(cont.run_id)
        except NotFound:
            return None

    def _context(
        self, run: RunRecord | None, requests: list[dict[str, Any]], show_personal: bool
    ) -> dict[str, Any] | None:
        """The task's context in ``run``, with the run's compiled workflow for its steps
        (left out when the stored spec no longer compiles here)."""
        if run is None:
            return None
        try:
            workflow = self.driver.workflow_for(run)
        except KneoError:
            workflow = None
        return task_context(run, requests, workflow, show_personal=show_personal)
