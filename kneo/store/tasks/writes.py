"""Continuation writes (human tasks): :class:`ContinuationWritesMixin`.

A continuation is stored with its request index (for listing by assignee and kind), the
inbox search's rows (:mod:`kneo.store.tasks.search`) and, while pending, its list row
(:mod:`kneo.store.tasks.inbox`); a replace is a compare-and-set on its version.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from kneo.errors import Conflict, ErrorCode
from kneo.lifecycle import TaskStatus
from kneo.store import row_records
from kneo.store import tables as t
from kneo.store.base import not_found_error
from kneo.store.records import ContinuationRecord
from kneo.store.row_values import (
    continuation_request_list,
    continuation_request_rows,
    continuation_values,
    new_continuation,
)
from kneo.store.tasks import inbox
from kneo.store.tasks.search import (
    LABEL,
    PROMOTION,
    approvers_of,
    scoped_term,
    task_labels,
    task_terms,
)
from kneo.store.transaction_base import NewTask, TransactionBase
from kneo.store.wire import statements as st

_TERM_COLUMNS = st.columns(t.continuation_terms)


class ContinuationWritesMixin(TransactionBase):
    """Continuations, inside a :class:`~kneo.store.transaction.Transaction`."""

    def put_continuation(
        self,
        continuation_id: str,
        *,
        run_id: str | None,
        requests: Sequence[Mapping[str, Any]],
        context: Mapping[str, Any] | None = None,
        status: str = TaskStatus.PENDING,
        expires_at: datetime | None = None,
        escalated_at: datetime | None = None,
        workflow_kind: str | None = None,
        expected_version: int | None = None,
        workflow_name: str | None = None,
        environment: str | None = None,
        search_text: Sequence[str] = (),
        bodies: Sequence[Mapping[str, Any]] | None = None,
        input_text: str = "",
        same_requests: bool = False,
        with_outcome: bool = False,
    ) -> ContinuationRecord:
        """Create a continuation, or replace it when ``expected_version`` matches the stored one.

        Each request is a dict with at least ``request_id`` (plus ``kind``, ``assignee``,
        ``status`` ... as the engine defines them); they are indexed for listing by assignee
        and kind. ``workflow_kind``, ``workflow_name`` and ``environment`` default to the
        run's (a replace keeps the stored name and environment). Creating an existing id is
        ``already_exists``; a version mismatch is ``stale_state``.

        A new pending continuation is indexed for the inbox search by the words of
        ``search_text`` (its prompts and run input, redacted by the caller), its workflow
        name and its assignees (:mod:`kneo.store.tasks.search`); a replace keeps those words while
        it stays pending and drops them when it does not.

        A pending continuation's ``list_row`` (what the task list shows, redacted:
        :mod:`kneo.store.tasks.inbox`) is built here from ``requests``, ``bodies`` (the pending
        requests' bodies in the run's state; ``None`` when the entries hold their own) and
        ``input_text`` (the run's input); it is dropped when the continuation stops being
        pending. ``same_requests``: a replace keeps the stored requests, only their statuses
        change (:meth:`_index_requests`). ``with_outcome``: a new continuation is written with
        the run's outcome, the transaction's next :meth:`finish_run` (a pause: on PostgreSQL
        then part of its one statement).
        """
        request_list, values = self._continuation(
            run_id, requests, context, status, expires_at, escalated_at, workflow_kind,
            workflow_name, environment,
        )  # fmt: skip
        values["list_row"] = None  # its place among the columns; set by _with_list_row
        if expected_version is None:
            new_continuation(values, continuation_id, self.now, self._pid)
        bound = self._with_list_row(values, request_list, bodies, input_text)
        if expected_version is not None:
            record = self._replace_continuation(continuation_id, expected_version, values, bound)
            self._index_requests(continuation_id, request_list, status, same_requests)
            self._reindex_terms(record, search_text)
            return record
        record = row_records.continuation(values)
        requests = continuation_request_rows(continuation_id, request_list, status, self._pid)
        terms = self._term_rows(record, search_text) if status == TaskStatus.PENDING else []
        task = NewTask(values, bound, requests, terms)
        if with_outcome and self._task is None:
            self._task = task
        else:  # (a second pause in one transaction: the first keeps its place)
            self._write_task(task)
        return record

    def _write_task(self, task: NewTask) -> None:
        """A new continuation's insert (``already_exists`` when its id is taken), then its
        request index and search rows."""
        values = task.values
        dbapi = self._d.db.loaded_dbapi
        try:
            cur = self._exec(
                ("continuation", tuple(values)),
                lambda: st.insert_new(
                    self._d.insert,
                    t.continuations,
                    tuple(values),
                    "continuation_id",
                    ["continuation_id"],
                ),
                task.bound,
            )
            inserted = cur.fetchall()
        except dbapi.IntegrityError as exc:  # the only other constraint: the run's key
            raise not_found_error("run", values["run_id"]) from exc
        if not inserted:
            raise task.taken()
        self._insert_requests(task.requests)
        self._insert_term_rows(task.terms)

    def _with_list_row(
        self,
        values: dict[str, Any],
        request_list: list[dict[str, Any]],
        bodies: Sequence[Mapping[str, Any]] | None,
        input_text: str,
    ) -> dict[str, Any]:
        """``values`` (their ``list_row`` ``None``) bound for the driver, the continuation's
        ``list_row`` (while pending: :mod:`kneo.store.tasks.inbox`) then set in both: the row in
        ``values``, in the bound ones its JSON text as the row was made with it (not encoded
        a second time)."""
        row, text = (
            inbox.encoded_list_row(request_list, bodies, input_text)
            if values["status"] == TaskStatus.PENDING
            else (None, None)
        )
        bound = self._d.bind(t.continuations, values)
        bound["list_row"], values["list_row"] = text, row
        return bound

    def _reindex_terms(self, cont: ContinuationRecord, search_text: Sequence[str]) -> None:
        """A replaced continuation's search rows: none unless pending; new words replace its
        words, else its words stay and its labels follow its requests."""
        pending = cont.status == TaskStatus.PENDING
        if not pending or search_text:
            self._delete_terms(cont.continuation_id)
        else:
            self._delete_labels(cont.continuation_id)
        if pending:
            self._insert_terms(cont, search_text, words=bool(search_text))

    def _insert_terms(
        self, cont: ContinuationRecord, search_text: Sequence[str], *, words: bool = True
    ) -> None:
        """Insert :meth:`_term_rows`."""
        self._insert_term_rows(self._term_rows(cont, search_text, words=words))

    def _insert_term_rows(self, rows: list[tuple[Any, ...]]) -> None:
        if rows:
            self._d.insert_rows(self._ex.add, t.continuation_terms, _TERM_COLUMNS, rows)

    def _term_rows(
        self, cont: ContinuationRecord, search_text: Sequence[str], *, words: bool = True
    ) -> list[tuple[Any, ...]]:
        """The inbox search's rows of a pending continuation (:mod:`kneo.store.tasks.search`): its
        words (unless ``words`` is false) and the labels of its pending requests (a
        promotion's: its approvers too)."""
        promotion = cont.workflow_kind == PROMOTION
        approvers = approvers_of(cont.context) if promotion else ()
        terms = task_labels(cont.requests, promotion=promotion, approvers=approvers)
        if words:
            assignees = [r.get("assignee") for r in cont.requests]
            terms += task_terms([cont.workflow_name, *assignees, *search_text])
        if not terms:
            return []
        at = self._d.binder(t.continuation_terms, "created_at")(cont.created_at)
        cid = cont.continuation_id
        return [(scoped_term(self._pid, w), at, cid) for w in terms]

    def _replace_continuation(
        self,
        continuation_id: str,
        expected_version: int,
        values: dict[str, Any],
        bound: Mapping[str, Any],
    ) -> ContinuationRecord:
        """Compare-and-set the continuation's columns to ``values`` (``bound``: as the driver
        takes them); the caller writes its request index. The record is
        ``values`` and the columns the update kept, read back (scalars: the JSON just written
        is not decoded again), or, on a row this transaction holds locked
        (:meth:`get_continuation`), the row it read."""
        keys = tuple(values)
        params = {f"v_{k}": bound[k] for k in keys}
        params |= {"k_id": continuation_id, "k_expected": expected_version}
        locked = self._locked_tasks.get(continuation_id)
        if locked is not None and locked["version"] == expected_version:
            # held row-locked at this version: it cannot miss, nothing read back
            self._batched(
                ("replace_locked_continuation", keys),
                lambda: st.replace_continuation(keys, ()),
                params,
            )
            row = self._locked_tasks[continuation_id] = {
                **locked,
                **values,
                "version": expected_version + 1,
            }
            return row_records.continuation(row)
        kept = tuple(c for c in st.columns(t.continuations) if c not in values)

        def build() -> Any:
            return st.replace_continuation(keys, kept)

        cur = self._exec(("replace_continuation", keys), build, params)
        found = cur.fetchall()
        if not found:
            select = functools.partial(
                st.select, t.continuations, ["version"], "continuation_id", "k_id"
            )
            if self._first("continuation_version", select, params) is None:
                raise not_found_error("continuation", continuation_id)
            raise Conflict(
                f"continuation {continuation_id!r} changed since it was read",
                code=ErrorCode.stale_state,
                continuation_id=continuation_id,
            )
        row = {**values, **self._d.reader(t.continuations, self._ex)(found[0])}
        if locked is not None:
            self._locked_tasks[continuation_id] = row
        return row_records.continuation(row)

    def _delete_requests(self, continuation_id: str) -> None:
        delete = functools.partial(st.delete, t.continuation_requests, "continuation_id")
        self._batched("delete_requests", delete, {"k_id": continuation_id})

    def _delete_terms(self, continuation_id: str) -> None:
        delete = functools.partial(st.delete, t.continuation_terms, "continuation_id")
        self._batched("delete_terms", delete, {"k_id": continuation_id})

    def _delete_labels(self, continuation_id: str) -> None:
        delete = functools.partial(st.delete, t.continuation_terms, "continuation_id", labels=True)
        label = scoped_term(self._pid, LABEL)
        self._batched("delete_labels", delete, {"k_id": continuation_id, "k_label": label})

    def delete_continuation(self, continuation_id: str) -> bool:
        """Remove the project's continuation, its request index and its search words;
        ``False`` if it did not exist (in this project)."""
        # RETURNING, not rowcount: in psycopg's pipeline a rowcount is known only once synced
        delete = functools.partial(st.delete, t.continuations, "continuation_id", returning=True)
        if self._first("delete_continuation", delete, {"k_id": continuation_id}) is None:
            return False
        self._delete_requests(continuation_id)  # (its key's cascade took them already)
        self._delete_terms(continuation_id)
        return True

    def get_continuation(
        self, continuation_id: str, *, for_update: bool = False
    ) -> ContinuationRecord:
        """The continuation as this transaction sees it. ``for_update`` row-locks it, and its
        run with it in the same statement, the run's row first (as a cancel or any writer of
        both takes them): a decision's reading. Then neither can change before this
        transaction ends, its ``get_run(for_update=True)`` reads nothing, and its writes of
        either at the versions it read (:meth:`put_continuation` with ``expected_version``,
        ``update_run``) cannot miss and read nothing back: in psycopg's pipeline they go out
        with the commit."""
        if for_update and (found := self._lock_with_run(continuation_id)) is not None:
            return found
        row = self._row(t.continuations, "continuation_id", continuation_id, for_update=for_update)
        if row is None:
            raise not_found_error("continuation", continuation_id)
        if for_update:
            self._locked_tasks[continuation_id] = row
        return row_records.continuation(row)

    def _continuation(
        self,
        run_id: str | None,
        requests: Sequence[Mapping[str, Any]],
        context: Mapping[str, Any] | None,
        status: str,
        expires_at: datetime | None,
        escalated_at: datetime | None,
        workflow_kind: str | None,
        workflow_name: str | None,
        environment: str | None,
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """A continuation's checked requests and the columns a create or replace writes;
        ``workflow_kind``, ``workflow_name`` and ``environment`` default to the run's."""
        request_list = continuation_request_list(requests)
        if workflow_kind is None and run_id is not None:
            found = self._first(
                "select_kind",
                functools.partial(
                    st.select,
                    t.runs,
                    ["workflow_kind", "workflow_name", "environment"],
                    "run_id",
                    "run_id",
                ),
                {"run_id": run_id},
            )
            if found is None:  # no such run in this project
                raise not_found_error("run", run_id)
            if found:
                workflow_kind = found[0]
                workflow_name = workflow_name or found[1]
                environment = environment or found[2]
        values = continuation_values(
            run_id=run_id,
            status=status,
            request_list=request_list,
            context=context,
            workflow_kind=workflow_kind,
            expires_at=expires_at,
            escalated_at=escalated_at,
            now=self.now,
            workflow_name=workflow_name,
            environment=environment,
        )
        return request_list, values

    def _index_requests(
        self, continuation_id: str, request_list: list[dict[str, Any]], status: str, same: bool
    ) -> None:
        """A replaced continuation's request index: its rows' one status set in place when the
        requests are the stored ones (``same``), else the rows dropped and written anew."""
        rows = continuation_request_rows(continuation_id, request_list, status, self._pid)
        statuses = {row["status"] for row in rows}
        if same and len(statuses) == 1:
            update = functools.partial(st.set_status, t.continuation_requests, "continuation_id")
            self._batched(
                "request_status", update, {"k_id": continuation_id, "v_status": statuses.pop()}
            )
            return
        self._delete_requests(continuation_id)
        self._insert_requests(rows)

    def _insert_requests(self, rows: list[dict[str, Any]]) -> None:
        """The continuation's request index rows (:func:`continuation_request_rows`)."""
        if rows:
            self._insert_rows(t.continuation_requests, st.columns(t.continuation_requests), rows)
