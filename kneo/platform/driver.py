"""RunDriver: executes a run through the engine and writes its outcome.

It owns what executing needs and nothing else: the engine, the store, this process's owner
name and lease (renewed by :class:`~kneo.platform.leases.LeaseKeeper`), the cache of compiled workflows by ``(spec digest, target)`` and
the cancellation tokens of the runs it is driving. Starting, resuming and continuing a run
all end in :meth:`RunDriver.drive`; a sweep or a cancel that moved a run on signals its
token through :meth:`RunDriver.signal_cancel`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kneo import metrics, tracing
from kneo.engine.cancellation import CancellationToken
from kneo.engine.executor import WorkflowEngine
from kneo.engine.outcomes import Outcome, Paused, Superseded
from kneo.engine.state import ExecutionState
from kneo.errors import Conflict, ErrorCode
from kneo.jsontext import content_hash
from kneo.kernel.code import CodeSet, missing, remember
from kneo.lifecycle import RunStatus
from kneo.lrucache import LRUCache
from kneo.platform.journal import StoreJournal
from kneo.platform.leases import LeaseKeeper
from kneo.platform.observer import RunObserver
from kneo.platform.outcomes import write_outcome
from kneo.platform.results import RunResult, run_result
from kneo.policy.access import HostAccess
from kneo.spec.compiled import CompiledWorkflow
from kneo.spec.compiler import SpecCompiler
from kneo.spec.loader import load_spec_data
from kneo.store import RunRecord, Store

if TYPE_CHECKING:
    from kneo.store.wire.executor import HeldConnection

#: audit rows an outcome writes with it: ``(event, actor, continuation_id, payload)``
Audits = list[tuple[str, str | None, str | None, dict[str, Any]]]


@dataclass(kw_only=True, eq=False, repr=False)
class RunDriver:
    """Drives runs of one process: engine, leases, compiled-workflow cache."""

    engine: WorkflowEngine
    compiler: SpecCompiler
    store: Store
    owner: str
    lease_seconds: float
    #: what a run may reach on the host (:class:`~kneo.policy.access.HostAccess`), by its
    #: environment and origin
    access: Callable[[RunRecord], HostAccess]
    cache_entries: InitVar[int]
    #: renews the lease of every run this process drives (kneo.platform.leases)
    leases: LeaseKeeper[str] = field(init=False)
    #: compiled workflows by (spec digest, target): bounded, so distinct specs cannot grow
    #: the process (``KNEO_SERV_SPEC_CACHE_ENTRIES``)
    compiled: LRUCache[tuple[str, str, str], CompiledWorkflow] = field(init=False)
    _tokens: dict[str, CancellationToken] = field(init=False, default_factory=dict)
    #: called with each outcome once committed, and with each cancel (before, after):
    #: the child runs' moves (:class:`kneo.platform.children.Children`)
    after_outcome: Callable[[RunRecord], RunResult | None] | None = field(init=False, default=None)
    after_cancel: Callable[[RunRecord, RunRecord], None] | None = field(init=False, default=None)

    def __post_init__(self, cache_entries: int) -> None:
        self.leases = LeaseKeeper(
            "kneo-run-leases",
            self.lease_seconds / 3,
            functools.partial(
                self.store.queue.renew_run_leases, owner=self.owner, ttl_seconds=self.lease_seconds
            ),
        )
        self.compiled = LRUCache(cache_entries)

    # ------------------------------------------------------------------ workflows

    def workflow_for(self, run: RunRecord) -> CompiledWorkflow:
        """The run's compiled workflow, from the cache or compiled from its stored spec, with
        the project code the run recorded when it started (fetched from the store when this
        process does not hold it): a resume weeks later, on any worker, runs that code."""
        pinned = self.code_of(run)
        key = (run.spec_digest or content_hash(run.spec), run.target, pinned.digest)
        cached = self.compiled.get(key)
        if cached is not None:
            return cached
        absent = missing(pinned)
        if absent:
            remember(self.store.code.get(absent))
        model = load_spec_data(dict(run.spec), source=f"run {run.run_id}")
        base = (run.metadata or {}).get("base_dir")
        workflow = self.compiler.compile(
            model,
            target=run.target,  # type: ignore[arg-type]
            base_dir=Path(base) if base else None,
            source=f"run {run.run_id}",
            code=pinned,
        )
        self.compiled.put(key, workflow)
        return workflow

    def code_of(self, run: RunRecord) -> CodeSet:
        """The code set ``run`` is pinned to: its record's digest, the manifest read from the
        store's ``code_files`` when this process has not seen it (once per digest)."""
        return CodeSet.from_record((run.metadata or {}).get("code"), fetch=self.store.code.get)

    def remember(self, digest: str, target: str, workflow: CompiledWorkflow) -> None:
        """Cache a workflow compiled while preparing a spec, for the runs made from it."""
        self.compiled.put((digest, target, workflow.code.digest), workflow)

    # ------------------------------------------------------------------ cancellation

    def signal_cancel(self, run_id: str, reason: str) -> None:
        """Tell the run's engine loop to stop, if this process is driving it (a run driven
        elsewhere learns it at its next compare-and-set)."""
        token = self._tokens.get(run_id)
        if token is not None:
            token.cancel(reason)

    # ------------------------------------------------------------------ results

    def trace_count(self, run_id: str) -> int:
        return self.store.runs.list_trace(run_id, limit=1).total or 0

    def result(self, run: RunRecord) -> RunResult:
        # Trace events are numbered 1..trace_seq per run and only ever deleted with the run,
        # so the counter on the row is the count.
        count = run.trace_seq if run.trace_seq is not None else self.trace_count(run.run_id)
        return run_result(run, trace_event_count=count)

    # ------------------------------------------------------------------ driving

    def drive(
        self,
        run: RunRecord,
        workflow: CompiledWorkflow,
        *,
        audits: Audits | None = None,
        resumed_from: Mapping[str, Any] | None = None,
        connection: HeldConnection | None = None,
    ) -> RunResult:
        """Execute from the run's stored state and write the outcome. The transaction that
        moved the run to ``running`` gave this process its lease (``tx.take_run_lease``, or
        ``create_run``'s ``lease``). ``resumed_from``: the trace context the pause stored (the run's span links to it).
        ``connection``: the one that transaction used, kept for the run's step transactions
        (one checkout per run, not two)."""
        run_id = run.run_id
        journal = StoreJournal(
            self.store,
            run_id,
            run.version,
            checkpoint_seq=run.checkpoint_seq,
            connection=connection,
        )
        # The run was just read or written at this version; a cancel bumps it, so the
        # compare-and-set of the next boundary catches one even before the first probe.
        token = CancellationToken(
            lambda: self.store.runs.get_run(run.run_id).status == RunStatus.CANCELLED,
            probe_interval=1.0,
            probe_now=False,
        )
        self._tokens[run.run_id] = token
        released = False
        observer = self._observer(run, journal, resumed_from)
        result: RunResult | None = None
        ended: RunRecord | None = None
        outcome: Outcome | None = None
        try:
            with self.leases.holding(run_id):
                outcome = self.engine.run(
                    workflow,
                    ExecutionState(run.state),
                    observer or journal,
                    run_id=run.run_id,
                    cancellation=token,
                    metadata={"environment": run.environment},
                    access=self.access(run),
                )
                result, ended = self._finish(run, journal, outcome, audits or [], observer)
                released = ended is not None
        finally:
            self._tokens.pop(run.run_id, None)
            if not released:
                self.store.queue.release_run_lease(run_id, self.owner)
            if observer is not None:
                observer.end(
                    result.status if result is not None else None,
                    getattr(outcome, "error", None) or {"code": ErrorCode.run_interrupted},
                )
        if ended is not None and self.after_outcome is not None:
            # a wait it answered at once (a child refused) continued the run: its result
            return self.after_outcome(ended) or result
        return result

    def _observer(
        self, run: RunRecord, journal: StoreJournal, resumed_from: Mapping[str, Any] | None
    ) -> RunObserver | None:
        """The run's metrics and trace over ``journal``; ``None`` when neither is on (the
        engine then writes to the journal directly)."""
        if not metrics.enabled() and tracing.tracer() is None:
            return None
        links, parent = [], None
        if tracing.tracer() is not None:
            # one trace across the wait: the resumed run continues the pause's trace
            # (a child of the pause, linked to it) and links to the request resuming it
            links = tracing.links_to(resumed_from)
            parent = tracing.stored_span(resumed_from)
            if parent is not None:
                links += tracing.link_to_current("resumed_by")
        return RunObserver(journal, run=run, links=links, parent=parent, project=self.store.project)

    def _finish(
        self,
        run: RunRecord,
        journal: StoreJournal,
        outcome: Outcome,
        audits: Audits,
        observer: RunObserver | None = None,
    ) -> tuple[RunResult, RunRecord | None]:
        """The outcome in one transaction: status, output, continuation, checkpoint, events,
        and the end of this process's lease; ``(result, the run as written)`` (``None``:
        nothing written, the lease not released).

        ``run`` is the record the run was driven from (status ``running``); the outcome's
        compare-and-set on ``journal.version`` proves nobody changed it since, so it is not
        read again. A lost compare-and-set (cancelled, taken over) writes nothing."""
        run_id = run.run_id
        if isinstance(outcome, Superseded):
            journal.discard()
            return self.result(self.store.runs.get_run(run_id)), None
        trace_context = (
            observer.paused(outcome.requests)
            if observer is not None and isinstance(outcome, Paused)
            else None
        )
        try:  # on the step transactions' connection, given back after it
            with self.store.transaction(journal.connection) as tx:
                updated = write_outcome(
                    tx, run, journal, outcome, audits, self.owner, trace_context=trace_context
                )
                updated = tx.current(updated)
        except Conflict as exc:
            if exc.code != "stale_state":
                raise
            journal.discard()
            return self.result(self.store.runs.get_run(run_id)), None
        finally:
            journal.close()
        metrics.record_run(
            updated.status, updated.started_at, updated.finished_at, project=self.store.project
        )
        return self.result(updated), updated
