"""PlatformManager: the public facade that composes the platform's collaborators.

The service, CLI, console, MCP server, worker and tests call it; it builds the engine and
hands each responsibility to one collaborator with explicit dependencies:

* :class:`~kneo.platform.admission.RunAdmission` — the one place that decides whether a run
  may start (approved bundles, the service-managed environment policy);
* :class:`~kneo.platform.preparation.SpecPreparation` — admit, load, check, compile and cache
  a spec for a new run;
* :class:`~kneo.platform.driver.RunDriver` — drive a run through the engine and write its
  outcome (engine, leases, run slot, compiled workflows, cancellation tokens);
* :class:`~kneo.platform.runs.Runs` — start, execute, cancel, continue and replay runs;
* :class:`~kneo.platform.decisions.Decisions` — the inbox, one task, and resume;
* :class:`~kneo.platform.inspect.Inspection` — runs, traces, checkpoints, replay, recovery;
* :class:`~kneo.platform.sweeps.Sweeps` — timeouts and stranded runs.

Events (:mod:`.events`), retention (:mod:`.maintenance`) and bundle runs (:mod:`.bundles`) are
functions over the store or this facade. No collaborator imports this module.

Invariants kept by the collaborators:

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
from pathlib import Path
from typing import Any

from kneo.clock import Clock, SystemClock
from kneo.engine.executor import EngineOptions, WorkflowEngine
from kneo.engine.remote_tools import McpSessions
from kneo.errors import ConfigError
from kneo.platform.admission import RunAdmission
from kneo.platform.decisions import Decisions
from kneo.platform.driver import RunDriver
from kneo.platform.inspect import Inspection
from kneo.platform.preparation import SpecPreparation
from kneo.platform.results import RunResult
from kneo.platform.runs import Runs
from kneo.platform.slot import RunSlot, default_patience
from kneo.platform.sweeps import Sweeps
from kneo.settings import Settings
from kneo.spec.compiler import SpecCompiler
from kneo.spec.models import McpImport, Spec
from kneo.spec.project import ProjectContext
from kneo.store import RunRecord, Store

Providers = Callable[[str], Any]


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
        # Every input-keyed cache is bounded, so distinct specs cannot grow the process
        # (``KNEO_SERV_SPEC_CACHE_ENTRIES``).
        entries = self.settings.spec_cache_entries
        self.driver = RunDriver(
            engine=self.engine,
            compiler=compiler,
            store=self.store,
            owner=self.owner,
            lease_seconds=max(5.0, float(self.settings.worker_lease_seconds)),
            slot=RunSlot(default_patience(self.store.backend, self.settings.run_slot_ms)),
            cache_entries=entries,
        )
        self.admission = RunAdmission(
            store=self.store, compiler=compiler, project=project, cache_entries=entries
        )
        self.preparation = SpecPreparation(
            compiler=compiler,
            project=project,
            admission=self.admission,
            driver=self.driver,
            cache_entries=entries,
        )
        self.runs = Runs(
            store=self.store,
            clock=self.clock,
            settings=self.settings,
            preparation=self.preparation,
            admission=self.admission,
            driver=self.driver,
        )
        self.decisions = Decisions(
            store=self.store, clock=self.clock, settings=self.settings, driver=self.driver
        )
        self.inspection = Inspection(store=self.store, driver=self.driver)
        self.sweeps = Sweeps(
            store=self.store, clock=self.clock, driver=self.driver, decisions=self.decisions
        )
        self._worker: threading.Thread | None = None
        self._worker_stop = threading.Event()
        self._sleep = sleep

    def _mcp_sessions(self, imports: Sequence[McpImport]) -> McpSessions:
        """A run's MCP sessions (the SDK loads only when a spec imports a server)."""
        from kneo.mcp.client import McpClientSessions

        return McpClientSessions(imports, settings=self.settings)

    @property
    def lease_seconds(self) -> float:
        """How long a run's execution lease lasts unless renewed (``KNEO_SERV_WORKER_LEASE_SECONDS``,
        at least 5 s)."""
        return self.driver.lease_seconds

    # ================================================================== runs

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
        overrides: Mapping[str, Any] | None = None,
    ) -> RunResult:
        """Create a run and execute it now; returns when it finishes or pauses.
        ``overrides`` are merged into the spec (checked by the admission gate)."""
        return self.runs.run_from_spec(
            input_text=input_text,
            spec_path=spec_path,
            spec=spec,
            target=target,
            environment=environment,
            overrides=overrides,
            metadata=metadata,
            actor=actor,
        )

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
        overrides: Mapping[str, Any] | None = None,
    ) -> RunResult:
        """Create a queued run (with ``deadline_at`` when ``timeout_seconds`` is given) for a
        worker; :meth:`execute_run` runs it."""
        return self.runs.start_run_from_spec(
            input_text=input_text,
            spec_path=spec_path,
            spec=spec,
            target=target,
            environment=environment,
            overrides=overrides,
            timeout_seconds=timeout_seconds,
            metadata=metadata,
            actor=actor,
        )

    def execute_run(self, run_id: str, *, run: RunRecord | None = None) -> RunResult:
        """Execute a queued run in this process (what a worker calls), admitted again first.
        ``run``: its record as the caller just read it, so it is not read again."""
        return self.runs.execute_run(run_id, run=run)

    def cancel(self, run_id: str, *, actor: str | None = None) -> RunResult:
        """Cancel a queued, running or paused run now. A step in flight finishes, but its
        result is never committed: the run's version moved on, so its write is refused."""
        return self.runs.cancel(run_id, actor=actor)

    def continue_run(self, run_id: str, *, actor: str | None = None) -> RunResult:
        """Continue a run whose process died (or whose step failed) from its last completed
        step boundary; completed steps and agent turns are not executed again."""
        return self.runs.continue_run(run_id, actor=actor)

    def replay_run(
        self, run_id: str, *, reuse: str = "questions", actor: str | None = None
    ) -> RunResult:
        """Run ``run_id`` again as a new run (same spec, input and environment) that reuses
        its recorded answers: ``questions`` (``ask_question`` waits) or ``all`` decisions.
        A reused answer does not pause; anything new still does."""
        return self.runs.replay_run(run_id, reuse=reuse, actor=actor)

    # ================================================================== human tasks

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
        return self.decisions.resume(
            continuation_id,
            request_id=request_id,
            decision=decision,
            content=content,
            selected_option=selected_option,
            actor=actor,
            idempotency_key=idempotency_key,
            metadata=metadata,
        )

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
        return self.decisions.list_human_tasks(
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

    def get_human_task(
        self, continuation_id: str, *, show_personal: bool = False
    ) -> dict[str, Any]:
        """One task with every request (answered ones with who decided and when); a
        promotion task also with its approvals so far. ``show_personal`` for a decider."""
        return self.decisions.get_human_task(continuation_id, show_personal=show_personal)

    # ================================================================== inspection

    def get_run(self, run_id: str, *, show_personal: bool = False) -> dict[str, Any]:
        """The run's view; ``show_personal`` for a decider (:mod:`kneo.redaction`)."""
        return self.inspection.get_run(run_id, show_personal=show_personal)

    def get_run_result(self, run_id: str) -> RunResult:
        return self.inspection.get_run_result(run_id)

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
        return self.inspection.list_runs(
            status=status,
            limit=limit,
            offset=offset,
            sort_by=sort_by,
            sort_order=sort_order,
            cursor=cursor,
            count=count,
        )

    def trace(
        self,
        run_id: str,
        *,
        event_type: str | None = None,
        limit: int = 1000,
        offset: int = 0,
        sort_order: str = "asc",
    ) -> dict[str, Any]:
        return self.inspection.trace(
            run_id, event_type=event_type, limit=limit, offset=offset, sort_order=sort_order
        )

    def checkpoints(
        self,
        run_id: str,
        *,
        type: str | None = None,
        limit: int = 1000,
        offset: int = 0,
        include_payload: bool = False,
    ) -> dict[str, Any]:
        return self.inspection.checkpoints(
            run_id, type=type, limit=limit, offset=offset, include_payload=include_payload
        )

    def replay(self, run_id: str) -> dict[str, Any]:
        """A compact timeline of the run's checkpoints plus the recovery context."""
        return self.inspection.replay(run_id)

    def checkpoint_diff(
        self, run_id: str, *, from_sequence: int | None = None, to_sequence: int | None = None
    ) -> dict[str, Any]:
        """Added, removed and changed flattened paths between two checkpoints (default: the
        latest two)."""
        return self.inspection.checkpoint_diff(
            run_id, from_sequence=from_sequence, to_sequence=to_sequence
        )

    def recovery(self, run_id: str) -> dict[str, Any]:
        return self.inspection.recovery(run_id)

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
            self.store,
            run_id,
            after=after,
            follow=follow,
            through_pauses=through_pauses,
            poll_seconds=poll_seconds,
            timeout_seconds=timeout_seconds,
            sleep=self._sleep,
        )

    # ================================================================== sweeps, maintenance

    def prune_expired_human_tasks(self) -> int:
        """Apply ``on_timeout`` to expired requests of paused runs (see ``sweeps``)."""
        return self.sweeps.prune_expired_human_tasks()

    def prune_timed_out_runs(self) -> int:
        """Move runs past their ``deadline_at`` to ``timed_out`` (see ``sweeps``)."""
        return self.sweeps.prune_timed_out_runs()

    def recover_stranded_runs(self) -> int:
        """Queue runs left ``running`` with no live owner, to be continued (see ``sweeps``)."""
        return self.sweeps.recover_stranded_runs()

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

    # ================================================================== worker

    def start_worker(self, *, poll_seconds: float | None = None) -> None:
        """Execute queued runs on a background thread until :meth:`stop_worker`."""
        if self._worker is not None and self._worker.is_alive():
            return
        poll = poll_seconds or self.settings.worker_poll_seconds
        self._worker_stop.clear()

        def loop() -> None:
            while not self._worker_stop.is_set():
                record = self.store.claim(self.owner, self.lease_seconds)
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


__all__ = ["PlatformManager", "RunResult"]
