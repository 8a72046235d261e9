"""The transaction's statements, built in SQLAlchemy Core from the :mod:`~kneo.store.tables`.

Each builder runs once per statement shape and store (its key in
:meth:`~kneo.store.wire.statement_cache.StatementCache.text`, which compiles it for the store's
database). Parameters say what they hold: an inserted column's own name, ``v_<column>`` a
value an update sets, ``k_<name>`` a key, a condition or an amount, and ``row_...`` the
rows a statement adds, passed positionally after the named ones
(:data:`~kneo.store.wire.statement_cache.ROW`). Constants are literals, never parameters;
the project a statement is scoped to is one (:data:`PROJECT`), so one text serves every
project and the statement cache does not grow with their number.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from kneo.store import tables as t
from kneo.store.wire.statement_cache import ROW
from kneo.store.wire.tenancy import owned

#: a statement with a WHERE clause (:func:`_own`)
_Where = TypeVar("_Where", sa.Select[Any], sa.Update, sa.Delete)
#: A dialect's ``INSERT`` construct with ``ON CONFLICT`` (:meth:`StoreDialect.insert
#: <kneo.store.wire.dialects.StoreDialect.insert>`).
DialectInsert = Callable[[sa.Table], Any]
#: A one-statement write takes at most this many rows of a kind; longer lists go as
#: multi-row inserts, so a run makes a bounded number of statement texts.
MAX_NUMBERED_ROWS = 64
#: what a one-statement write's update returns (:func:`one_statement_write`)
CAS_RETURNING = ("run_id", "version", "checkpoint_seq", "trace_seq", "updated_at", "project_id")
#: The parameter a scoped statement takes its project from (the transaction's view's id:
#: :meth:`TransactionBase._exec <kneo.store.transaction_base.TransactionBase._exec>` adds it).
PROJECT = "k_project"

_runs = t.runs.c


def p(name: str) -> sa.BindParameter[Any]:
    """A named parameter."""
    return sa.bindparam(name)


def n(value: int) -> ColumnElement[Any]:
    """An integer constant, as a literal."""
    return sa.literal_column(str(int(value)))


def columns(table: sa.Table) -> tuple[str, ...]:
    """The columns an insert writes: all but an autoincrementing key."""
    return tuple(c.name for c in table.c if c.autoincrement is not True)


def insert(table: sa.Table, names: Sequence[str], returning: Sequence[str] = ()) -> Any:
    """One row's ``INSERT`` of ``names`` (each its own parameter)."""
    stmt = sa.insert(table).values({name: p(name) for name in names})
    return stmt.returning(*(table.c[r] for r in returning)) if returning else stmt


def insert_new(
    dialect_insert: DialectInsert,
    table: sa.Table,
    names: Sequence[str],
    key: str,
    returning: Sequence[str] = (),
) -> Any:
    """:func:`insert` that does nothing when the row with the same ``key`` exists; with
    ``returning``, it returns no row then."""
    stmt = dialect_insert(table).values({name: p(name) for name in names})
    stmt = stmt.on_conflict_do_nothing(index_elements=[key])
    return stmt.returning(*(table.c[r] for r in returning)) if returning else stmt


def upsert(
    dialect_insert: DialectInsert, table: sa.Table, names: Sequence[str], key: Sequence[str]
) -> Any:
    """:func:`insert`, or the update of the row with the same ``key`` columns to the same
    values."""
    stmt = dialect_insert(table).values({name: p(name) for name in names})
    updates = {name: stmt.excluded[name] for name in names if name not in key}
    return stmt.on_conflict_do_update(index_elements=list(key), set_=updates)


def mine(table: sa.Table) -> ColumnElement[bool]:
    """The row is the project :data:`PROJECT`'s."""
    return table.c.project_id == p(PROJECT)


def _own(stmt: _Where, table: sa.Table) -> _Where:
    """``stmt`` limited to the project's rows when ``table`` holds rows of projects
    (:mod:`~kneo.store.wire.tenancy` refuses it otherwise)."""
    return stmt.where(mine(table)) if owned(table) else stmt


def select(
    table: sa.Table,
    names: Sequence[str],
    key: str,
    param: str,
    *,
    lock: bool = False,
) -> Any:
    """``names`` of the project's rows of ``table`` whose ``key`` is ``param`` (see
    :func:`_own`); ``lock``: row-locked where the database has row locks (SQLite's write
    lock does)."""
    stmt = sa.select(*(table.c[name] for name in names)).where(table.c[key] == p(param))
    stmt = _own(stmt, table)
    return stmt.with_for_update() if lock else stmt


def select_in(table: sa.Table, names: Sequence[str], key: str, params: Sequence[str]) -> Any:
    """``names`` of the project's rows of ``table`` whose ``key`` is one of the parameters
    ``params``."""
    stmt = sa.select(*(table.c[name] for name in names)).where(
        table.c[key].in_([p(param) for param in params])
    )
    return _own(stmt, table)


def select_row(table: sa.Table, key: str, *, lock: bool = False) -> Any:
    """All of ``table``'s columns of the project's row whose ``key`` is ``k``, see
    :func:`select`."""
    return select(table, [c.name for c in table.c], key, "k", lock=lock)


def select_run_and_task() -> Any:
    """The project's continuation ``k`` and its run, every column of each (the run's
    first), both row-locked where the database has row locks: the run's first (PostgreSQL
    locks a join's rows in the order of its ``FROM``), as every writer of both locks them."""
    r, c = t.runs, t.continuations
    stmt = sa.select(*r.c, *c.c).join_from(r, c, c.c.run_id == r.c.run_id)
    return stmt.where(c.c.continuation_id == p("k"), mine(c)).with_for_update()


def delete(
    table: sa.Table,
    key: str,
    *,
    returning: bool = False,
    labels: bool = False,
) -> Any:
    """Delete the project's rows whose ``key`` is ``k_id`` (``labels``: only the terms that
    start with ``k_label``)."""
    stmt = _own(sa.delete(table).where(table.c[key] == p("k_id")), table)
    if labels:
        term, label = table.c.term, sa.bindparam("k_label", type_=sa.String())
        stmt = stmt.where(sa.func.substr(term, n(1), sa.func.length(label)) == label)
    return stmt.returning(table.c[key]) if returning else stmt


def set_status(table: sa.Table, key: str) -> Any:
    """Set ``status`` to ``v_status`` on the project's rows whose ``key`` is ``k_id``."""
    return _own(sa.update(table).where(table.c[key] == p("k_id")), table).values(
        status=p("v_status")
    )


def run_update(
    keys: Sequence[str],
    *,
    cas: bool = True,
    moves: bool = False,
    release: bool = False,
    guard: bool = False,
    returning: Sequence[str] = ("version", "checkpoint_seq", "trace_seq"),
) -> Any:
    """The runs update every write path uses: bump ``version``, stamp ``updated_at``
    (``k_now``), set ``keys`` (``v_<key>``), where ``run_id`` is ``k_run_id`` and, for a
    compare-and-set (``cas``), ``version`` is ``k_expected``. ``moves``: the sequence
    counters advance by ``k_checkpoints`` and ``k_events`` (the rows the write adds);
    ``release``: the lease ends when ``k_owner`` still holds it; ``guard``: only while the
    run's last checkpoint is ``k_last`` (the one a patch follows)."""
    values: dict[str, Any] = {"version": _runs.version + n(1), "updated_at": p("k_now")}
    values |= {key: p(f"v_{key}") for key in keys}
    if moves:
        values["checkpoint_seq"] = _runs.checkpoint_seq + p("k_checkpoints")
        values["trace_seq"] = _runs.trace_seq + p("k_events")
    if release:
        for name in ("lease_owner", "lease_expires_at"):
            held = _runs.lease_owner == p("k_owner")
            values[name] = sa.case((held, sa.null()), else_=_runs[name])
    where = [_runs.run_id == p("k_run_id"), mine(t.runs)]
    if cas:
        where.append(_runs.version == p("k_expected"))
    if guard:
        where.append(_runs.checkpoint_seq == p("k_last"))
    stmt = sa.update(t.runs).where(*where).values(values)
    return stmt.returning(*(_runs[name] for name in returning)) if returning else stmt


def set_run_columns(keys: Sequence[str]) -> Any:
    """Set ``keys`` (``v_<key>``) of the project's run ``k_run_id``, nothing else."""
    values = {key: p(f"v_{key}") for key in keys}
    return sa.update(t.runs).where(_runs.run_id == p("k_run_id"), mine(t.runs)).values(values)


def allocate(column: str) -> Any:
    """Move the project's run ``k_run_id``'s ``column`` counter on by ``k_count``; both
    counters (no row: no such run in the project)."""
    stmt = sa.update(t.runs).where(_runs.run_id == p("k_run_id"), mine(t.runs))
    stmt = stmt.values({column: _runs[column] + p("k_count")})
    return stmt.returning(_runs.checkpoint_seq, _runs.trace_seq)


def replace_continuation(keys: Sequence[str], kept: Sequence[str]) -> Any:
    """Compare-and-set a continuation (``k_id`` at ``k_expected``): ``keys`` set
    (``v_<key>``), the version bumped, the ``kept`` columns returned."""
    c = t.continuations.c
    values: dict[str, Any] = {"version": c.version + n(1)}
    values |= {key: p(f"v_{key}") for key in keys}
    stmt = sa.update(t.continuations).values(values)
    stmt = stmt.where(
        c.continuation_id == p("k_id"), c.version == p("k_expected"), mine(t.continuations)
    )
    return stmt.returning(*(c[name] for name in kept)) if kept else stmt


# -- PostgreSQL's one-statement write -----------------------------------------------------
#: The tables a one-statement write adds rows to, in the order its parameters come.
#: A pause's new task comes last: its continuation, request index and search rows.
CAS_TABLES = (
    t.checkpoints,
    t.trace_events,
    t.audit_events,
    t.notification_events,
    t.run_terms,
    t.continuations,
    t.continuation_requests,
    t.continuation_terms,
)
#: What a row added by a one-statement write takes from the updated run (``cas``), by
#: column; the rest of its columns are parameters (a row is written only if the run was).
_FROM_CAS: dict[str, tuple[str, ...]] = {
    "checkpoints": ("run_id", "sequence", "created_at"),
    "trace_events": ("run_id", "sequence", "created_at"),
    "audit_events": ("created_at", "project_id"),
    "notification_events": ("routed", "created_at", "project_id"),
    "run_terms": ("run_id",),  # its created_at is the run's: a parameter
    "continuations": ("project_id",),
    "continuation_requests": ("project_id",),
    "continuation_terms": (),
}
_COUNTER = {"checkpoints": "checkpoint_seq", "trace_events": "trace_seq"}


def cas_params(table: sa.Table) -> tuple[str, ...]:
    """The columns of ``table`` a one-statement write takes as parameters, in order."""
    return tuple(c for c in columns(table) if c not in _FROM_CAS[table.name])


def _from_cas(table: sa.Table, cas: Any, name: str, count: int, number: Any) -> Any:
    """Column ``name`` of row ``number`` (of ``count``) taken from the updated run."""
    if name == "created_at":
        return cas.c.updated_at
    if name == "routed":
        return sa.false()
    if name in ("run_id", "project_id"):  # the run's: an audit's project is its run's
        return cas.c[name]
    counter = cas.c[_COUNTER[table.name]]  # the sequence: numbered from the moved counter
    return counter if count == 1 else counter - n(count) + number


def one_statement_write(update: Any, counts: Sequence[int]) -> Any:
    """PostgreSQL: a runs update (:func:`run_update` returning :data:`CAS_RETURNING`) and
    the rows it adds, ``counts[i]`` of :data:`CAS_TABLES`' ``i``-th table, as one
    statement: each insert selects from the updated row, so the rows are numbered from its
    counters and nothing is written when the update finds no row. The rows' columns are
    ``row_`` parameters, row after row in :func:`cas_params` order: as plain parameters,
    not ``unnest`` of arrays (psycopg encodes an array element by element in Python, which
    cost more than the rest of the statement)."""
    cas = update.cte("cas")
    parts = []
    for index, (table, count) in enumerate(zip(CAS_TABLES, counts, strict=True)):
        if not count:
            continue
        own, names = cas_params(table), columns(table)
        fixed = _FROM_CAS[table.name]
        if count == 1:  # the row's parameters inline, numbered as the counter itself
            exprs = [
                _from_cas(table, cas, c, 1, None) if c in fixed else p(f"{ROW}{index}_{c}")
                for c in names
            ]
            source = sa.select(*exprs).select_from(cas)
        else:
            values = sa.values(
                sa.column("n", sa.Integer), *(sa.column(c) for c in own), name="r"
            ).data(
                [(n(i), *(p(f"{ROW}{index}_{i}_{c}") for c in own)) for i in range(1, count + 1)]
            )
            exprs = [
                _from_cas(table, cas, c, count, values.c.n) if c in fixed else values.c[c]
                for c in names
            ]
            source = sa.select(*exprs).select_from(cas, values)
        parts.append(sa.insert(table).from_select(names, source).cte(f"w{index}"))
    outcome = sa.select(cas.c.version, cas.c.checkpoint_seq, cas.c.trace_seq)
    return outcome.add_cte(*parts) if parts else outcome
