"""Looking back at a run: flattened checkpoint diffs, replay timelines and recovery context.

Pure helpers (:func:`flatten`, :func:`diff`, :func:`timeline_entry`, ...) and
:class:`Inspection`, the read-only queries ``PlatformManager`` delegates to: the run, its
trace, checkpoints and listing, :meth:`~Inspection.replay`, :meth:`~Inspection.checkpoint_diff`
and :meth:`~Inspection.recovery` (what completed, what failed, what would run next, whether
``continue_run`` may take the run over; :func:`owner_alive` judges a ``run:<id>`` lock holder).

:mod:`kneo.platform.run_graph` is imported where a run's graph is asked for (+5 ms with
:mod:`kneo.spec.graph`), which every platform would pay.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from kneo.engine.state import ExecutionState
from kneo.errors import InvalidRequest, KneoError, NotFound
from kneo.lifecycle import PUBLIC_RUN_STATUSES, RunStatus
from kneo.platform.child_links import children_of, parent_of
from kneo.platform.context import conversations, decisions
from kneo.platform.driver import RunDriver
from kneo.platform.events import read_events
from kneo.platform.results import (
    RunResult,
    checkpoint_view,
    page_counts,
    run_summary,
    run_view,
    trace_view,
)
from kneo.redaction import redact_mapping
from kneo.spec.suggest import one_of
from kneo.store import RunQuery, RunRecord

if TYPE_CHECKING:
    from kneo.platform.events import RunEvent
    from kneo.store import CheckpointRecord
    from kneo.store.api import Store


def flatten(value: object, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": [1]}}`` → ``{"a.b[0]": 1}``; empty containers are leaves."""
    out: dict[str, Any] = {}
    if isinstance(value, Mapping) and value:
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(value, list | tuple) and value:
        for index, item in enumerate(value):
            out.update(flatten(item, f"{prefix}[{index}]"))
    else:
        out[prefix or "<root>"] = value
    return out


def diff(before: object, after: object) -> dict[str, Any]:
    """Added, removed and changed flattened paths between two JSON values (redacted): one
    object per path, in path order (``{"path", "value"}``, or ``{"path", "from", "to"}``)."""
    a, b = flatten(before), flatten(after)
    shown = redact_mapping(
        {
            "added": {k: b[k] for k in b if k not in a},
            "removed": {k: a[k] for k in a if k not in b},
            "changed": {k: {"from": a[k], "to": b[k]} for k in a if k in b and a[k] != b[k]},
        }
    )
    return {
        "added": [{"path": k, "value": v} for k, v in sorted(shown["added"].items())],
        "removed": [{"path": k, "value": v} for k, v in sorted(shown["removed"].items())],
        "changed": [{"path": k, **v} for k, v in sorted(shown["changed"].items())],
    }


def timeline_entry(cp: CheckpointRecord) -> dict[str, Any]:
    """One replay row from a checkpoint record: no payload bodies, just where and how."""
    payload = cp.payload or {}
    meta = cp.metadata or {}
    pending = payload.get("pending") or []
    error = payload.get("error")
    return redact_mapping(
        {
            "sequence": cp.sequence,
            "type": cp.type,
            "step_id": cp.step_id,
            "node_id": meta.get("node_id"),
            "unit_key": meta.get("unit_key"),
            "attempt": meta.get("attempt"),
            "status": cp.status,
            "position": payload.get("position") or {},
            "pending_human_request_id": pending[0].get("request_id") if pending else None,
            "error": {"code": error.get("code"), "message": error.get("message")}
            if error
            else None,
            "created_at": cp.created_at.isoformat() if cp.created_at else None,
        }
    )


def completed_units(state: Mapping[str, Any]) -> list[dict[str, Any]]:
    units = state.get("units") or {}
    rows: list[dict[str, Any]] = []
    for key in state.get("order") or []:
        unit = units.get(key)
        if unit is not None:
            rows.append(
                {
                    "unit_key": key,
                    "step_id": unit.get("step_id"),
                    "status": unit.get("status"),
                    "attempts": unit.get("attempts"),
                }
            )
    return rows


def failed_unit(state: Mapping[str, Any]) -> dict[str, Any] | None:
    for key, unit in (state.get("units") or {}).items():
        if unit.get("status") in ("failed", "retrying"):
            return {
                "unit_key": key,
                "step_id": unit.get("step_id"),
                "status": unit.get("status"),
                "attempts": unit.get("attempts"),
                "error": unit.get("error"),
            }
    return None


def step_index(step_ids: Sequence[str], step_id: str | None) -> int | None:
    try:
        return list(step_ids).index(step_id) if step_id is not None else None
    except ValueError:
        return None


def owner_alive(owner: str) -> bool:
    """Whether the process named in a lock owner (``host:pid:nonce``) may still be running."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return True  # another machine: trust the lease ttl
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def workflow_kind_linear(run: RunRecord) -> bool:
    return run.workflow_kind in ("sequential", "graph", "handoff")


#: The original platform's words for run statuses, accepted in a status filter (its clients
#: send them); answers keep Kneo's own (``docs/clients.md``).
STATUS_ALIASES: Mapping[str, str] = {
    "completed": RunStatus.SUCCEEDED.value,
    "blocked": RunStatus.PAUSED.value,
}


@dataclass(kw_only=True, eq=False, repr=False)
class Inspection:
    """Read-only views of runs: the run, its trace and checkpoints, listings, replay
    timelines, checkpoint diffs and recovery context. The driver compiles a run's workflow
    (recovery asks the engine what would run next) and makes its result."""

    store: Store
    driver: RunDriver

    def get_run(
        self, run_id: str, *, show_personal: bool = False, include_conversation: bool = False
    ) -> dict[str, Any]:
        """The run's view; ``show_personal`` for a decider (:mod:`kneo.redaction`).
        ``include_conversation`` adds its agents' ``conversations`` and the ``decisions``
        taken (:mod:`kneo.platform.context`)."""
        run = self.store.runs.get_run(run_id)
        count = run.trace_seq if run.trace_seq is not None else self.driver.trace_count(run_id)
        pinned = (run.metadata or {}).get("code")
        if isinstance(pinned, Mapping) and "files" not in pinned:
            # the run records its code set's digest; the view names the files too (a
            # manifest gone from the store shows the digest alone: resuming says why)
            try:
                files = self.driver.code_of(run).manifest()
            except KneoError:
                files = None
            if files is not None:
                shown = {**pinned, "files": files}
                run = replace(run, metadata={**run.metadata, "code": shown})
        view = run_view(run, trace_event_count=count, show_personal=show_personal)
        view["parent_run_id"] = parent_of(run)
        view["children"] = self._children(run)
        if include_conversation:
            state = run.state or {}
            view["conversations"] = conversations(state, show_personal=show_personal)
            view["decisions"] = decisions(state, show_personal=show_personal)
        return view

    def _children(self, run: RunRecord) -> list[dict[str, Any]]:
        """The run's child runs (``kind: workflow`` steps), each with its status now."""
        found = []
        for child in children_of(run):
            status = "not_started"
            if child["run_id"]:
                try:
                    status = self.store.runs.get_run(child["run_id"]).status
                except NotFound:
                    status = "starting"
            found.append({**child, "status": status})
        return found

    def get_run_result(self, run_id: str) -> RunResult:
        return self.driver.result(self.store.runs.get_run(run_id))

    def get_run_record(self, run_id: str) -> RunRecord:
        """The run as stored (``not_found`` when there is none)."""
        return self.store.runs.get_run(run_id)

    def read_events(
        self,
        run_id: str,
        after: int,
        cache: dict[str, Any],
        include: frozenset[str] = frozenset(),
    ) -> tuple[list[RunEvent], int]:
        """One page of the run's events after sequence ``after`` and the last sequence read
        (:func:`kneo.platform.events.read_events`; ``cache`` is the stream's)."""
        return read_events(self.store, run_id, after, cache, include)

    def list_runs(self, query: RunQuery = RunQuery()) -> dict[str, Any]:
        """Runs, one page; ``next_cursor`` passed back as ``cursor`` gives the next one;
        ``count=False`` leaves ``total`` out (``None``). ``status``: one status or several
        separated by commas (any of them), each also in the original platform's words
        (:data:`STATUS_ALIASES`); the rest of the query (:class:`~kneo.store.RunQuery`):
        sessions, workflows, errors, a time window and a search."""
        if isinstance(query.status, str):  # one status, or several separated by commas
            listed = [STATUS_ALIASES.get(s.strip(), s.strip()) for s in query.status.split(",")]
            for one in listed:
                one_of(one, PUBLIC_RUN_STATUSES, "status")
            wanted = listed[0] if len(listed) == 1 else tuple(dict.fromkeys(listed))
            query = replace(query, status=wanted)
        page = self.store.runs.list_runs(query)
        return {
            "runs": [run_summary(r) for r in page.items],
            **page_counts(page),
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
        """One page of the run's trace events, by sequence."""
        self.store.runs.get_run(run_id)
        page = self.store.runs.list_trace(
            run_id, event_type=event_type, limit=limit, offset=offset, sort_order=sort_order
        )
        return {
            "run_id": run_id,
            "events": [trace_view(e) for e in page.items],
            **page_counts(page),
        }

    def checkpoints(
        self,
        run_id: str,
        *,
        type: str | None = None,
        limit: int = 1000,
        offset: int = 0,
        sort_order: str = "asc",
        include_payload: bool = False,
    ) -> dict[str, Any]:
        """One page of the run's checkpoints, by sequence (payloads on request)."""
        self.store.runs.get_run(run_id)
        page = self.store.runs.list_checkpoints(
            run_id, type=type, limit=limit, offset=offset, sort_order=sort_order
        )
        return {
            "run_id": run_id,
            "checkpoints": [
                checkpoint_view(c, include_payload=include_payload) for c in page.items
            ],
            **page_counts(page),
        }

    def recovery(self, run_id: str) -> dict[str, Any]:
        return self.recovery_of(self.store.runs.get_run(run_id))

    def run_graph(self, run_id: str) -> dict[str, Any]:
        """The run's workflow graph, its visited nodes and the node it is at
        (:mod:`kneo.platform.run_graph`)."""
        from kneo.platform.run_graph import require_spec, run_graph  # cost: module docstring

        run = self.store.runs.get_run(run_id)
        require_spec(run)
        return run_graph(run, self.driver.workflow_for(run))

    def replay(self, run_id: str) -> dict[str, Any]:
        """A compact timeline of the run's checkpoints plus the recovery context."""
        run = self.store.runs.get_run(run_id)
        page = self.store.runs.list_checkpoints(run_id, limit=1000)
        return redact_mapping(
            {
                "run_id": run_id,
                "status": run.status,
                "workflow_kind": run.workflow_kind,
                "timeline": [timeline_entry(c) for c in page.items],
                "position": (run.state or {}).get("position") or {},
                "pending_human_request_id": next(
                    (r.get("request_id") for r in (run.state or {}).get("pending") or []), None
                ),
                "error": run.error,
                "replay_context": self.recovery_of(run),
            }
        )

    def checkpoint_diff(
        self,
        run_id: str,
        *,
        from_sequence: int | None = None,
        to_sequence: int | None = None,
    ) -> dict[str, Any]:
        """Added, removed and changed flattened paths between two checkpoints (default: the
        latest two)."""
        self.store.runs.get_run(run_id)
        if from_sequence is None or to_sequence is None:
            latest = self.store.runs.list_checkpoints(run_id, limit=2, sort_order="desc").items
            if not latest:
                raise NotFound(f"run {run_id} has no checkpoints", resource="checkpoint")
            newest = latest[0].sequence
            to_sequence = to_sequence if to_sequence is not None else newest
            from_sequence = (
                from_sequence
                if from_sequence is not None
                else (latest[1].sequence if len(latest) > 1 else newest)
            )
        if from_sequence < 1 or to_sequence < 1:
            raise InvalidRequest("checkpoint sequences start at 1", field="from_sequence")
        ends = (from_sequence, to_sequence)
        found = self.store.runs.list_checkpoints(run_id, sequences=ends, limit=2).items
        by_sequence = {checkpoint.sequence: checkpoint for checkpoint in found}
        for sequence in ends:
            if sequence not in by_sequence:
                ident = f"{run_id}#{sequence}"
                raise NotFound(f"checkpoint {ident!r} not found", resource="checkpoint", id=ident)
        before, after = by_sequence[from_sequence], by_sequence[to_sequence]
        changes = diff(
            {"payload": before.payload, "metadata": before.metadata},
            {"payload": after.payload, "metadata": after.metadata},
        )
        return {
            "run_id": run_id,
            "from_sequence": from_sequence,
            "to_sequence": to_sequence,
            "from_type": before.type,
            "to_type": after.type,
            # the original platform's clients read the two ends and the count
            "from_checkpoint": {"sequence": from_sequence, "type": before.type},
            "to_checkpoint": {"sequence": to_sequence, "type": after.type},
            "change_count": sum(len(changes[kind]) for kind in ("added", "removed", "changed")),
            **changes,
        }

    def recovery_of(self, run: RunRecord) -> dict[str, Any]:
        """What completed, what failed, what would run next, and whether ``continue_run`` may
        take the run over (a live owner's lease says no)."""
        state = run.state or {}
        done = completed_units(state)
        failed = failed_unit(state)
        try:
            workflow = self.driver.workflow_for(run)
            upcoming = self.driver.engine.next_units(workflow, ExecutionState(state))
            step_ids = workflow.step_ids
        except Exception as exc:  # a spec that no longer compiles cannot be continued
            upcoming, step_ids = [], ()
            reason: str | None = f"the run's spec cannot be compiled: {exc}"
        else:
            reason = None
        nxt = upcoming[0] if upcoming else None
        can = run.status in (RunStatus.RUNNING, RunStatus.FAILED) and bool(upcoming)
        if can and run.status == RunStatus.RUNNING:
            holder = self.store.queue.run_lease(run.run_id)
            if holder is not None and owner_alive(holder.owner):
                can, reason = False, "the run is still executing in a live process"
        if reason is None and not can:
            reason = {
                RunStatus.PAUSED: "the run is paused: resume its continuation",
                RunStatus.QUEUED: "the run has not started",
            }.get(
                RunStatus(run.status),
                f"the run is {run.status}"
                if upcoming or run.status != RunStatus.RUNNING
                else "no step is left to run",
            )
        outputs = ExecutionState(state).outputs_by_step()
        last_output = (
            outputs[done[-1]["step_id"]]
            if done and done[-1]["step_id"] in outputs
            else run.input_text
        )
        # Redacted like every view of run data: ``resume_input`` is a step's output, ``failure``
        # a step's error, and either may carry what a tool returned.
        return redact_mapping(
            {
                "run_id": run.run_id,
                "status": run.status,
                "workflow_kind": run.workflow_kind,
                "completed_steps": [u["step_id"] for u in done],
                "completed_units": done,
                "failed_step": failed["step_id"] if failed else None,
                "failure": failed,
                "next_step": nxt["step_id"] if nxt else None,
                "next_step_index": step_index(step_ids, nxt["step_id"]) if nxt else None,
                "next_units": upcoming,
                "resume_input": (last_output or "")[:2000] if workflow_kind_linear(run) else None,
                "can_continue": can,
                "reason": None if can else reason,
            }
        )
