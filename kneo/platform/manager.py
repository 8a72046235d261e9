"""PlatformManager: the one place that composes the engine with the store.

The public API: start, execute, pause, resume, cancel and continue runs; the worker loop;
driving a run through the engine and finishing it; traces, checkpoints and runs listing.
Delegated to their kin: spec preparation and run creation (:mod:`.preparation`), outcome
writing (:mod:`.outcomes`), replay/diff/recovery (:mod:`.inspect`), human-task listing and
decision validation/application (:mod:`.decisions`), timeouts (:mod:`.sweeps`), events
(:mod:`.events`), retention (:mod:`.maintenance`), bundles (:mod:`.bundles`).

Invariants kept here:

* every status change goes through :func:`kneo.engine.lifecycle.transition`;
* a step boundary is one store transaction (:class:`~kneo.platform.journal.StoreJournal`),
  and so is the outcome: status, output, continuation, checkpoint, trace and audit together;
* every write to a run is a compare-and-set on its version, so a process holding a stale
  view (a cancelled run, a continuation resumed elsewhere) can never overwrite newer state;
* resume validates the decision before anything changes and writes it with compare-and-set
  on the run and the continuation (a racing resume reads again: ``resource_locked`` while
  the winner executes the run, ``request_already_resolved`` after);
* an executing run holds the lock ``run:<id>``, so ``continue_run`` only takes over runs
  whose process is gone.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from kneo import metrics, tracing
from kneo.clock import Clock, SystemClock
from kneo.engine.cancellation import CancellationToken
from kneo.engine.executor import (
    EngineOptions,
    Outcome,
    Paused,
    Superseded,
    WorkflowEngine,
)
from kneo.engine.human import HumanDecision, HumanRequest
from kneo.engine.lifecycle import RunStatus, transition
from kneo.engine.remote_tools import McpSessions
from kneo.engine.state import ExecutionState
from kneo.errors import (
    ConfigError,
    Conflict,
    DatabaseUnavailable,
    IllegalTransition,
    InvalidRequest,
    ResourceLocked,
)
from kneo.jsontext import content_hash
from kneo.lrucache import LRUCache
from kneo.names import check_name
from kneo.platform import inspect
from kneo.platform.decisions import list_human_tasks, resume_decision
from kneo.platform.journal import StoreJournal, checkpoint_payload
from kneo.platform.leases import LeaseKeeper
from kneo.platform.observer import RunObserver
from kneo.platform.outcomes import write_outcome
from kneo.platform.preparation import create_run, prepare
from kneo.platform.results import (
    RunResult,
    checkpoint_view,
    run_result,
    run_summary,
    run_view,
    task_view,
    trace_view,
)
from kneo.platform.slot import RunSlot, default_patience
from kneo.settings import Settings
from kneo.spec.compiled import CompiledWorkflow
from kneo.spec.compiler import SpecCompiler
from kneo.spec.loader import load_spec_data
from kneo.spec.models import McpImport, Spec
from kneo.spec.project import ProjectContext
from kneo.store import ContinuationRecord, RunRecord, Store

Providers = Callable[[str], Any]


def _accepted(exc: DatabaseUnavailable, run_id: str) -> DatabaseUnavailable:
    """The database went away after ``run_id`` was created: say so, so a caller polls the
    run instead of starting another (the stranded-run sweep continues it)."""
    return DatabaseUnavailable(
        f"{exc.message}; run {run_id} was created and will continue from its last completed "
        "step once the database is back",
        run_id=run_id,
    )


_owner_alive = inspect.owner_alive


class PlatformManager:
    """Runs specs durably. Both stores may be (and for atomic pauses must be) one Store."""

    def __init__(
        self,
        *,
        compiler: SpecCompiler,
        run_state_store: Store,
        continuation_store: Store | None = None,
        settings: Settings | None = None,
        project: ProjectContext | None = None,
        providers: Providers | None = None,
        clock: Clock | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if continuation_store is not None and continuation_store is not run_state_store:
            raise ConfigError(
                "run_state_store and continuation_store must be the same Store: a pause writes "
                "the run and its continuation in one transaction"
            )
        self.compiler = compiler
        self.store = run_state_store
        self.settings = settings or run_state_store.settings
        self.project = project
        self.clock: Clock = clock or getattr(run_state_store, "clock", None) or SystemClock()
        if providers is None:
            from kneo.engine.providers import create_provider_registry

            secrets_map = project.config.secrets.providers if project is not None else None
            providers = create_provider_registry(self.settings, secrets=secrets_map).get
        self.engine = WorkflowEngine(
            providers=providers,
            tools=compiler.tool_registry,
            runtimes=compiler.runtime_registry,
            clock=self.clock,
            sleep=sleep,
            options=EngineOptions(
                record_tool_arguments=self.settings.otel_record_arguments,
                record_tool_results=self.settings.otel_record_results,
            ),
            mcp=self._mcp_sessions,
        )
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._lease = max(5.0, float(self.settings.worker_lease_seconds))
        #: renews the lease of every run this process drives (kneo.platform.leases)
        self._leases = LeaseKeeper(run_state_store, self.owner, self._lease)
        # Keyed by what callers send (an inline spec's digest, a path): bounded, so distinct
        # specs cannot grow the process (``KNEO_SERV_SPEC_CACHE_ENTRIES``).
        entries = self.settings.spec_cache_entries
        self._compiled: LRUCache[tuple[str, str], CompiledWorkflow] = LRUCache(entries)
        #: prepared specs by what they depend on (see preparation.prepare_key)
        self._prepared: LRUCache[tuple[Any, ...], dict[str, Any]] = LRUCache(entries)
        #: "approved bundles only?" per environment, by policy file stamps (see preparation)
        self._bundle_rules: LRUCache[tuple[Any, ...], bool] = LRUCache(entries)
        self._tokens: dict[str, CancellationToken] = {}
        self._worker: threading.Thread | None = None
        self._worker_stop = threading.Event()
        self._sleep = sleep
        #: one executing run at a time on SQLite (see kneo.platform.slot)
        self._slot = RunSlot(default_patience(self.store.backend, self.settings.run_slot_ms))

    # ================================================================== starting runs

    def _mcp_sessions(self, imports: Sequence[McpImport]) -> McpSessions:
        """A run's MCP sessions (the SDK loads only when a spec imports a server)."""
        from kneo.mcp.client import McpClientSessions

        return McpClientSessions(imports, settings=self.settings)

    def run_from_spec(
        self,
        *,
        input_text: str,
        spec_path: str | Path | None = None,
        spec: Spec | Mapping[str, Any] | None = None,
        target: str = "workflow",
        environment: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        actor: str | None = None,
    ) -> RunResult:
        """Create a run and execute it now; returns when it finishes or pauses."""
        with self._slot.hold():
            prepared = self._prepare(
                spec_path=spec_path, spec=spec, target=target, environment=environment
            )
            run = self._create_run(prepared, input_text, start=True, metadata=metadata, actor=actor)
            try:
                return self._drive(run, prepared["workflow"], leased=True)
            except DatabaseUnavailable as exc:
                raise _accepted(exc, run.run_id) from exc

    def start_run_from_spec(
        self,
        *,
        input_text: str,
        spec_path: str | Path | None = None,
        spec: Spec | Mapping[str, Any] | None = None,
        target: str = "workflow",
        environment: str | None = None,
        timeout_seconds: float | None = None,
        metadata: Mapping[str, Any] | None = None,
        actor: str | None = None,
    ) -> RunResult:
        """Create a queued run (with ``deadline_at`` when ``timeout_seconds`` is given) for a
        worker; :meth:`execute_run` runs it."""
        if timeout_seconds is not None and timeout_seconds <= 0:
            raise InvalidRequest(
                "timeout_seconds must be greater than zero", field="timeout_seconds"
            )
        prepared = self._prepare(
            spec_path=spec_path, spec=spec, target=target, environment=environment
        )
        deadline = (
            self.clock.now() + timedelta(seconds=timeout_seconds) if timeout_seconds else None
        )
        run = self._create_run(
            prepared, input_text, start=False, deadline_at=deadline, metadata=metadata, actor=actor
        )
        return self._result(run)

    def execute_run(self, run_id: str, *, run: RunRecord | None = None) -> RunResult:
        """Execute a queued run in this process (what a worker calls). ``run``: its record as
        the caller just read it, so it is not read again (the start is a compare-and-set on
        its version either way)."""
        run = run if run is not None and run.run_id == run_id else self.store.get_run(run_id)
        status = (
            transition(run.status, RunStatus.RUNNING, action="execute the run")
            if run.status == RunStatus.QUEUED
            else None
        )
        if status is None:
            raise IllegalTransition(
                f"cannot execute run {run_id}: it is {run.status}, not queued"
                + ("; use continue_run for an interrupted run" if run.status == "running" else ""),
                current_status=run.status,
            )
        if run.bundle_name is None:
            # The same gate as at accept time (pin_spec_source), again now: an environment
            # that has since come to require approved bundles runs no ad-hoc spec.
            from kneo.platform.bundles import refuse_unapproved

            refuse_unapproved(self, run.environment)
        workflow = self._workflow_for(run)
        # The update first: it reads the run's counters, so the event is numbered in memory
        # (on PostgreSQL, two round trips in all).
        with self.store.raw_transaction() as tx:
            run = tx.update_run(
                run_id, expected_version=run.version, status=status, started_at=tx.now
            )
            tx.add_trace_events(
                run_id, [{"event_type": "run_started", "payload": {"owner": self.owner}}]
            )
            tx.take_run_lease(run_id, self.owner, self._lease)
            run = tx.current(run)
        return self._drive(run, workflow, leased=True)

    # ================================================================== resume / cancel

    def resume(
        self,
        continuation_id: str,
        *,
        request_id: str,
        decision: str,
        content: str | None = None,
        selected_option: str | None = None,
        actor: str | None = None,
        idempotency_key: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> RunResult:
        """Apply a person's decision; continue the run once no request is pending.

        With ``idempotency_key`` the same key and decision replay the first result
        (``replayed`` is set), a different decision under it is ``idempotency_key_conflict``.
        ``metadata`` is stored with the decision (``auto_continued`` for timeouts)."""
        if idempotency_key is not None:
            from kneo.platform.idempotency import idempotent

            def call() -> tuple[int, dict[str, Any]]:
                done = self.resume(
                    continuation_id,
                    request_id=request_id,
                    decision=decision,
                    content=content,
                    selected_option=selected_option,
                    actor=actor,
                    metadata=metadata,
                )
                # Kept with personal data (secrets redacted): the replay is redacted for
                # whoever reads it, like the first answer (``RunResult.to_dict``).
                return 200, done.to_dict(show_personal=True)

            digest = content_hash(
                [
                    {
                        "request_id": request_id,
                        "decision": decision,
                        "content": content,
                        "selected_option": selected_option,
                    }
                ]
            )
            _, body, replayed = idempotent(
                self.store,
                scope=f"{actor or 'anonymous'}:human.resume:{continuation_id}",
                key=idempotency_key,
                digest=digest,
                call=call,
            )
            return RunResult.from_dict(body, replayed=replayed)
        cont = self.store.get_continuation(continuation_id)
        if cont.workflow_kind == "promotion":
            from kneo.platform.bundles import resume_promotion  # GitOps promotion: no run

            return resume_promotion(
                self,
                continuation_id,
                request_id=request_id,
                decision=decision,
                content=content,
                actor=actor,
            )
        return resume_decision(
            self,
            continuation_id,
            request_id=request_id,
            decision=decision,
            content=content,
            selected_option=selected_option,
            actor=actor,
            metadata=metadata,
            continuation=cont,
        )

    def _apply_decision(
        self,
        run: RunRecord,
        cont: ContinuationRecord,
        state: ExecutionState,
        request: HumanRequest,
        answer: HumanDecision,
    ) -> RunResult | None:
        from kneo.platform.decisions import apply_decision

        return apply_decision(self, run, cont, state, request, answer)

    def cancel(self, run_id: str, *, actor: str | None = None) -> RunResult:
        """Cancel a queued, running or paused run now. A step in flight finishes, but its
        result is never committed: the run's version moved on, so its write is refused."""
        run = self.store.get_run(run_id)
        status = transition(run.status, RunStatus.CANCELLED, action="cancel the run")
        with self.store.transaction() as tx:
            updated = tx.update_run(
                run_id,
                expected_version=run.version,
                status=status,
                cancel_requested=True,
                finished_at=tx.now,
            )
            cid = (run.state or {}).get("continuation_id")
            if run.status == RunStatus.PAUSED and cid:
                tx.delete_continuation(cid)
            tx.add_trace_event(run_id, "run_cancelled", payload={"previous_status": run.status})
            tx.add_checkpoint(
                run_id,
                type="run_cancelled",
                status="cancelled",
                payload=checkpoint_payload(run.state or {}),
            )
            tx.add_audit(
                "run.cancelled", actor=actor, run_id=run_id, payload={"previous_status": run.status}
            )
            updated = tx.current(updated)
        metrics.record_run(updated.status, updated.started_at, updated.finished_at)
        result = self._result(updated)
        token = self._tokens.get(run_id)
        if token is not None:
            token.cancel("cancelled")
        return result

    def continue_run(self, run_id: str, *, actor: str | None = None) -> RunResult:
        """Continue a run whose process died (or whose step failed) from its last completed
        step boundary; completed steps and agent turns are not executed again."""
        run = self.store.get_run(run_id)
        if run.status == RunStatus.PAUSED:
            raise IllegalTransition(
                f"run {run_id} is paused: resume its continuation instead",
                current_status=run.status,
            )
        if run.status not in (RunStatus.RUNNING, RunStatus.FAILED):
            raise IllegalTransition(
                f"cannot continue run {run_id}: it is {run.status}", current_status=run.status
            )
        holder = self.store.run_lease(run_id)
        if holder is not None and holder.owner != self.owner:
            if _owner_alive(holder.owner):
                raise ResourceLocked(
                    f"run {run_id} is still executing ({holder.owner})", lock=f"run:{run_id}"
                )
            self.store.release_run_lease(run_id, holder.owner)  # its process is gone
        workflow = self._workflow_for(run)
        state = ExecutionState(run.state)
        state.failure = None
        with self.store.transaction() as tx:
            updated = tx.update_run(
                run_id,
                expected_version=run.version,
                status=transition(run.status, RunStatus.RUNNING, action="continue the run"),
                error=None,
                finished_at=None,
                state=state.snapshot(),
            )
            tx.add_trace_event(run_id, "run_continued", payload={"previous_status": run.status})
            tx.add_audit(
                "run.continued",
                actor=actor,
                run_id=run_id,
                payload={"previous_status": run.status, "completed_steps": state.completed_steps()},
            )
        return self._drive(updated, workflow)

    # ================================================================== inspection

    def get_run(self, run_id: str, *, show_personal: bool = False) -> dict[str, Any]:
        """The run's view; ``show_personal`` for a decider (:mod:`kneo.redaction`)."""
        run = self.store.get_run(run_id)
        count = run.trace_seq if run.trace_seq is not None else self._trace_count(run_id)
        return run_view(run, trace_event_count=count, show_personal=show_personal)

    def get_run_result(self, run_id: str) -> RunResult:
        return self._result(self.store.get_run(run_id))

    def list_runs(
        self,
        *,
        status: str | None = None,
        limit: int = 50,
        offset: int = 0,
        sort_by: str = "created_at",
        sort_order: str = "desc",
        cursor: str | None = None,
        count: bool = True,
    ) -> dict[str, Any]:
        """Runs, one page; ``next_cursor`` passed back as ``cursor`` gives the next one;
        ``count=False`` leaves ``total`` out (``None``)."""
        page = self.store.list_runs(
            status=status,
            limit=limit,
            offset=offset,
            sort_by=sort_by,
            sort_order=sort_order,
            cursor=cursor,
            count=count,
        )
        return {
            "runs": [run_summary(r) for r in page.items],
            "count": len(page.items),
            "total": page.total,
            "limit": page.limit,
            "offset": page.offset,
            "sort_by": page.sort_by,
            "sort_order": page.sort_order,
            "next_cursor": page.next_cursor,
        }

    def trace(
        self,
        run_id: str,
        *,
        event_type: str | None = None,
        limit: int = 1000,
        offset: int = 0,
        sort_order: str = "asc",
    ) -> dict[str, Any]:
        self.store.get_run(run_id)
        page = self.store.list_trace(
            run_id, event_type=event_type, limit=limit, offset=offset, sort_order=sort_order
        )
        return {
            "run_id": run_id,
            "events": [trace_view(e) for e in page.items],
            "count": len(page.items),
            "total": page.total,
            "limit": page.limit,
            "offset": page.offset,
        }

    def checkpoints(
        self,
        run_id: str,
        *,
        type: str | None = None,
        limit: int = 1000,
        offset: int = 0,
        include_payload: bool = False,
    ) -> dict[str, Any]:
        self.store.get_run(run_id)
        page = self.store.list_checkpoints(run_id, type=type, limit=limit, offset=offset)
        return {
            "run_id": run_id,
            "checkpoints": [
                checkpoint_view(c, include_payload=include_payload) for c in page.items
            ],
            "count": len(page.items),
            "total": page.total,
            "limit": page.limit,
            "offset": page.offset,
        }

    def replay(self, run_id: str) -> dict[str, Any]:
        """A compact timeline of the run's checkpoints plus the recovery context."""
        return inspect.replay(self, run_id)

    def checkpoint_diff(
        self, run_id: str, *, from_sequence: int | None = None, to_sequence: int | None = None
    ) -> dict[str, Any]:
        """Added, removed and changed flattened paths between two checkpoints (default: the
        latest two)."""
        return inspect.checkpoint_diff(
            self, run_id, from_sequence=from_sequence, to_sequence=to_sequence
        )

    def recovery(self, run_id: str) -> dict[str, Any]:
        return self._recovery(self.store.get_run(run_id))

    def _recovery(self, run: RunRecord) -> dict[str, Any]:
        return inspect.recovery(self, run)

    # ================================================================== human tasks

    def list_human_tasks(
        self,
        *,
        run_id: str | None = None,
        workflow_kind: str | None = None,
        workflow: str | None = None,
        environment: str | None = None,
        assignee: str | None = None,
        kind: str | None = None,
        escalated: bool | None = None,
        sort: str = "oldest",
        older_than_seconds: float | None = None,
        limit: int = 100,
        offset: int = 0,
        cursor: str | None = None,
        count: bool = True,
        by_assignee: bool = True,
        show_personal: bool = False,
    ) -> dict[str, Any]:
        """Pending tasks filtered by run, workflow kind, workflow (or promoted bundle) name,
        environment, assignee, request kind (``promotion``: promotions), escalation and age
        (created more than ``older_than_seconds`` ago); oldest or newest first.
        ``next_cursor`` passed back as ``cursor`` gives the next page (keyset paging).
        ``count`` adds ``total``, ``by_assignee`` the count of pending requests per assignee
        (``"(unassigned)"`` for none) as ``counts_by_assignee``; each is ``None`` when not
        asked for (they visit every pending task, where a page stops after its rows).
        ``show_personal`` for a decider."""
        return list_human_tasks(
            self,
            run_id=run_id,
            workflow_kind=workflow_kind,
            workflow=workflow,
            environment=environment,
            assignee=assignee,
            kind=kind,
            escalated=escalated,
            sort=sort,
            older_than_seconds=older_than_seconds,
            limit=limit,
            offset=offset,
            cursor=cursor,
            count=count,
            by_assignee=by_assignee,
            show_personal=show_personal,
        )

    # ================================================================== timeouts, events, replay

    def prune_expired_human_tasks(self) -> int:
        """Apply ``on_timeout`` to expired requests of paused runs (see ``sweeps``)."""
        from kneo.platform.sweeps import prune_expired_human_tasks

        return prune_expired_human_tasks(self)

    def prune_timed_out_runs(self) -> int:
        """Move runs past their ``deadline_at`` to ``timed_out`` (see ``sweeps``)."""
        from kneo.platform.sweeps import prune_timed_out_runs

        return prune_timed_out_runs(self)

    def recover_stranded_runs(self) -> int:
        """Queue runs left ``running`` with no live owner, to be continued (see ``sweeps``)."""
        from kneo.platform.sweeps import recover_stranded_runs

        return recover_stranded_runs(self)

    @property
    def lease_seconds(self) -> float:
        """How long a run's execution lease lasts unless renewed (``KNEO_SERV_WORKER_LEASE_SECONDS``,
        at least 5 s)."""
        return self._lease

    def events(
        self,
        run_id: str,
        *,
        after: int = 0,
        follow: bool = False,
        through_pauses: bool = False,
        poll_seconds: float = 0.25,
        timeout_seconds: float | None = None,
    ) -> Iterator[Any]:
        """The run's events (``RunEvent``) after sequence ``after``; see ``events``."""
        from kneo.platform.events import iter_events

        return iter_events(
            self,
            run_id,
            after=after,
            follow=follow,
            through_pauses=through_pauses,
            poll_seconds=poll_seconds,
            timeout_seconds=timeout_seconds,
            sleep=self._sleep,
        )

    def replay_run(
        self, run_id: str, *, reuse: str = "questions", actor: str | None = None
    ) -> RunResult:
        """Run ``run_id`` again as a new run (same spec, input and environment) that reuses
        its recorded answers: ``questions`` (``ask_question`` waits) or ``all`` decisions.
        A reused answer does not pause; anything new still does."""
        if reuse not in ("questions", "all"):
            raise InvalidRequest("reuse must be 'questions' or 'all'", field="reuse")
        source = self.store.get_run(run_id)
        decisions = {
            k: v
            for k, v in ((source.state or {}).get("decisions") or {}).items()
            if reuse == "all" or k.startswith("ask_question:")
        }
        meta = source.metadata or {}
        workflow = self._workflow_for(source)
        prepared = {
            "workflow": workflow,
            "data": source.spec,
            "digest": source.spec_digest or content_hash(source.spec),
            "target": source.target,
            "base_dir": meta.get("base_dir"),
            "spec_path": meta.get("spec_path"),
            "environment": source.environment,
        }
        run = self._create_run(
            prepared,
            source.input_text,
            start=True,
            actor=actor,
            metadata={"replay_of": run_id},
            decisions=decisions,
        )
        return self._drive(run, workflow, leased=True)

    def get_human_task(
        self, continuation_id: str, *, show_personal: bool = False
    ) -> dict[str, Any]:
        """One task with every request (answered ones with who decided and when); a
        promotion task also with its approvals so far. ``show_personal`` for a decider."""
        from kneo.platform.tasks import with_bodies

        task = with_bodies(self.store, self.store.get_continuation(continuation_id))
        view = task_view(task, pending_only=False, show_personal=show_personal)
        if task.workflow_kind == "promotion":
            from kneo.platform.registry import promotion_tally

            view["promotion"] = promotion_tally(self.store, task, show_personal=show_personal)
        return view

    # ================================================================== worker

    def start_worker(self, *, poll_seconds: float | None = None) -> None:
        """Execute queued runs on a background thread until :meth:`stop_worker`."""
        if self._worker is not None and self._worker.is_alive():
            return
        poll = poll_seconds or self.settings.worker_poll_seconds
        self._worker_stop.clear()

        def loop() -> None:
            while not self._worker_stop.is_set():
                record = self.store.claim(self.owner, self._lease)
                if record is None:
                    self._worker_stop.wait(poll)
                    continue
                try:
                    self.execute_run(record.run_id)
                except Exception as exc:  # recorded on the queue row; the worker lives on
                    self.store.fail(
                        record.queue_id,
                        self.owner,
                        {"type": type(exc).__name__, "message": str(exc)[:500]},
                    )
                else:
                    self.store.complete(record.queue_id, self.owner)

        self._worker = threading.Thread(target=loop, name="kneo-worker", daemon=True)
        self._worker.start()

    def stop_worker(self, timeout: float | None = 10.0) -> None:
        self._worker_stop.set()
        if self._worker is not None:
            self._worker.join(timeout)
            self._worker = None

    # ================================================================== maintenance

    def prune_retention(
        self, policy: Any = None, *, now: Any = None, dry_run: bool = False
    ) -> dict[str, int]:
        """Delete runs, checkpoints, queue records, continuations, artifacts and logs older
        than their windows (``policy``, else project ``retention:`` under
        ``KNEO_SERV_RETENTION_*``); counts per category. See :mod:`kneo.platform.maintenance`."""
        from kneo.platform.maintenance import prune_retention

        return prune_retention(
            self.store,
            settings=self.settings,
            project=self.project,
            policy=policy,
            now=now,
            dry_run=dry_run,
        )

    # ================================================================== internals

    def _prepare(
        self,
        *,
        spec_path: str | Path | None,
        spec: Spec | Mapping[str, Any] | None,
        target: str,
        environment: str | None,
    ) -> dict[str, Any]:
        """Load, check (with environment policy) and compile; see :mod:`.preparation`."""
        if environment is not None:
            check_name(environment, kind="environment")
        return prepare(self, spec_path=spec_path, spec=spec, target=target, environment=environment)

    def _workflow_for(self, run: RunRecord) -> CompiledWorkflow:
        key = (run.spec_digest or content_hash(run.spec), run.target)
        cached = self._compiled.get(key)
        if cached is not None:
            return cached
        model = load_spec_data(dict(run.spec), source=f"run {run.run_id}")
        base = (run.metadata or {}).get("base_dir")
        workflow = self.compiler.compile(
            model,
            target=run.target,  # type: ignore[arg-type]
            base_dir=Path(base) if base else None,
            source=f"run {run.run_id}",
        )
        self._compiled.put(key, workflow)
        return workflow

    def _create_run(
        self,
        prepared: Mapping[str, Any],
        input_text: str,
        *,
        start: bool,
        deadline_at: Any = None,
        metadata: Mapping[str, Any] | None = None,
        actor: str | None = None,
        decisions: Mapping[str, Any] | None = None,
    ) -> RunRecord:
        return create_run(
            self,
            prepared,
            input_text,
            start=start,
            deadline_at=deadline_at,
            metadata=metadata,
            actor=actor,
            decisions=decisions,
        )

    def _drive(
        self,
        run: RunRecord,
        workflow: CompiledWorkflow,
        *,
        leased: bool = False,
        audits: list[tuple[str, str | None, str | None, dict[str, Any]]] | None = None,
        resumed_from: Mapping[str, Any] | None = None,
    ) -> RunResult:
        """Execute from the run's stored state and write the outcome. ``leased``: the
        transaction that moved the run to ``running`` already gave this process its lease.
        ``resumed_from``: the trace context the pause stored (the run's span links to it)."""
        run_id = run.run_id
        if not leased:
            self.store.acquire_run_lease(run_id, self.owner, self._lease)
        journal = StoreJournal(
            self.store,
            run_id,
            run.version,
            rejoin=self._slot.rejoin,
            checkpoint_seq=run.checkpoint_seq,
        )
        # The run was just read or written at this version; a cancel bumps it, so the
        # compare-and-set of the next boundary catches one even before the first probe.
        token = CancellationToken(
            lambda: self.store.get_run(run.run_id).status == RunStatus.CANCELLED,
            probe_interval=1.0,
            probe_now=False,
        )
        self._tokens[run.run_id] = token
        released = False
        observer = None
        if metrics.enabled() or tracing.tracer() is not None:
            links = tracing.links_to(resumed_from) if tracing.tracer() is not None else []
            observer = RunObserver(journal, run=run, links=links)
        result: RunResult | None = None
        outcome: Outcome | None = None
        try:
            with self._leases.holding(run_id), self._slot.hold():
                outcome = self.engine.run(
                    workflow,
                    ExecutionState(run.state),
                    observer or journal,
                    run_id=run.run_id,
                    cancellation=token,
                    metadata={"environment": run.environment},
                    waiting=self._slot.released,
                )
                result, released = self._finish(run, journal, outcome, audits or [], observer)
            return result
        finally:
            self._tokens.pop(run.run_id, None)
            if not released:
                self.store.release_run_lease(run_id, self.owner)
            if observer is not None:
                observer.end(
                    result.status if result is not None else None,
                    getattr(outcome, "error", None) or {"code": "run_interrupted"},
                )

    def _finish(
        self,
        run: RunRecord,
        journal: StoreJournal,
        outcome: Outcome,
        audits: list[tuple[str, str | None, str | None, dict[str, Any]]],
        observer: RunObserver | None = None,
    ) -> tuple[RunResult, bool]:
        """The outcome in one transaction: status, output, continuation, checkpoint, events,
        and the end of this process's lease; ``(result, lease released)``.

        ``run`` is the record the run was driven from (status ``running``); the outcome's
        compare-and-set on ``journal.version`` proves nobody changed it since, so it is not
        read again. A lost compare-and-set (cancelled, taken over) writes nothing."""
        run_id = run.run_id
        if isinstance(outcome, Superseded):
            journal.discard()
            return self._result(self.store.get_run(run_id)), False
        # Give a held step-writer connection (PostgreSQL) back first: the outcome then gets
        # it from the pool instead of a second one. (On SQLite both use the process's writer
        # connection: see StoreDialect.write_connection.)
        journal.close()
        trace_context = (
            observer.paused(outcome.requests)
            if observer is not None and isinstance(outcome, Paused)
            else None
        )
        try:
            with self.store.raw_transaction() as tx:
                updated = write_outcome(
                    tx, run, journal, outcome, audits, self.owner, trace_context=trace_context
                )
                updated = tx.current(updated)
        except Conflict as exc:
            if exc.code != "stale_state":
                raise
            journal.discard()
            return self._result(self.store.get_run(run_id)), False
        metrics.record_run(updated.status, updated.started_at, updated.finished_at)
        return self._result(updated), True

    def _trace_count(self, run_id: str) -> int:
        return self.store.list_trace(run_id, limit=1).total or 0

    def _result(self, run: RunRecord) -> RunResult:
        # Trace events are numbered 1..trace_seq per run and only ever deleted with the run,
        # so the counter on the row is the count.
        count = run.trace_seq if run.trace_seq is not None else self._trace_count(run.run_id)
        return run_result(run, trace_event_count=count)


__all__ = ["PlatformManager", "RunResult"]
