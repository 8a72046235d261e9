"""Tenancy by construction: a statement on a project-owned table names its project.

A project's view of the store reads and writes its own rows only because each statement it
runs compares the ``project_id`` of every project-owned table it reaches with a bound value.
A builder that forgets the comparison would read every project's rows, and no test of the
forgetting builder's own feature would notice. So the check is not left to the builders: the
statement cache (:meth:`~kneo.store.wire.statement_cache.StatementCache.text`) and the
engine's statement hook (:func:`watch`) judge every compiled statement once, by its shape,
and refuse one that reaches a project-owned table without binding its project, unless the
statement (or the connection running it) is declared global with :data:`GLOBAL`.

A table is project-owned when it has a ``project_id`` column. It is scoped in a statement
when some condition compares its ``project_id`` with a bound value (``=`` or ``IN``), or
joins it to a scoped table on the project or on a primary-key column of either (a row
reached through a scoped row's key is that row's parent or child); an ``INSERT`` into it
writes ``project_id``. Child tables without the column (checkpoints, trace events) are
reached by a key of their parent that the caller found in its project first.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine.default import DefaultExecutionContext
from sqlalchemy.sql import operators, visitors
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import Compiled
from sqlalchemy.sql.ddl import ExecutableDDLElement
from sqlalchemy.sql.elements import BinaryExpression, BindParameter, ClauseElement, Tuple
from sqlalchemy.sql.selectable import TextualSelect

#: The execution option that declares a statement (or a connection's every statement) global:
#: it sees every project, and each row it returns says whose it is. Its value says why.
GLOBAL = "kneo_global"
#: The execution option of the connections a store's view opens (its facets' reads and bare
#: writes): the statements the engine hook judges. A connection opened on the engine by hand
#: (a test inspecting rows, ``kneo db doctor``) is not a view's and is not judged.
VIEW = "kneo_view"
_COLUMN = "project_id"
#: the alias of an upsert's proposed row (``ON CONFLICT ... DO UPDATE SET x = excluded.x``)
_EXCLUDED = "excluded"
_EQUAL = (operators.eq, operators.in_op, operators.is_not_distinct_from)
_Statement = TypeVar("_Statement", bound=Executable)


class UnscopedStatement(RuntimeError):
    """A statement reaches a project-owned table without binding its project: a programming
    error in a builder, refused before it runs."""


def owned(table: sa.FromClause) -> bool:
    """Whether ``table`` (a table or an alias of one) holds rows of a project."""
    return _COLUMN in table.c and isinstance(_base(table), sa.Table)


def _judged_table(table: sa.FromClause) -> bool:
    """Whether ``table`` is owned and not an upsert's proposed row (``excluded``: the inserted
    row itself, judged as the insert)."""
    return owned(table) and not (isinstance(table, sa.Alias) and table.name == _EXCLUDED)


def _base(table: sa.FromClause) -> sa.FromClause:
    while isinstance(table, sa.Alias):
        table = table.element
    return table


def unscoped(stmt: ClauseElement, sql: str) -> list[str]:
    """The project-owned tables ``stmt`` (compiled as ``sql``) reaches without binding their
    project, by name."""
    if isinstance(stmt, sa.TextClause | TextualSelect):
        return _unscoped_text(str(stmt if isinstance(stmt, sa.TextClause) else stmt.element))
    reached: dict[sa.FromClause, None] = {}
    bound: set[sa.FromClause] = set()
    joined: list[tuple[sa.FromClause, sa.FromClause]] = []
    for element in visitors.iterate(stmt):
        if isinstance(element, sa.FromClause) and _judged_table(element):
            reached[element] = None
        elif isinstance(element, sa.ColumnClause) and element.table is not None:
            if _judged_table(element.table):
                reached[element.table] = None
        elif isinstance(element, BinaryExpression) and element.operator in _EQUAL:
            _compared(element.left, element.right, bound, joined)
            _compared(element.right, element.left, bound, joined)
        if (
            isinstance(element, sa.Insert)
            and owned(element.table)
            and _writes_project(element, sql if element is stmt else "")
        ):
            bound.add(element.table)
    grown = True
    while grown:  # a join on the project, or on a scoped table's key, scopes the other side
        grown = False
        for one, other in joined:
            if (one in bound) != (other in bound):
                bound |= {one, other}
                grown = True
    return sorted({_base(table).name for table in reached if table not in bound})  # type: ignore[attr-defined]


def _compared(
    side: ClauseElement,
    value: ClauseElement,
    bound: set[sa.FromClause],
    joined: list[tuple[sa.FromClause, sa.FromClause]],
) -> None:
    """Record what ``side = value`` scopes: a bound value compared with ``side``'s
    ``project_id`` binds its table; another table's ``project_id``, or a column of another
    table's primary key, joins the two (``joined``): either then scopes the other, a row
    reached through a scoped row's key being that row's parent or child."""
    columns = side.clauses if isinstance(side, Tuple) else (side,)
    for column in columns:
        if not isinstance(column, sa.ColumnClause) or column.table is None:
            continue
        if column.name == _COLUMN and _is_value(value):
            bound.add(column.table)
        elif (
            isinstance(value, sa.ColumnClause)
            and value.table is not None
            and (value.name == _COLUMN == column.name or value.primary_key)
        ):
            joined.append((column.table, value.table))


def _is_value(value: object) -> bool:
    """Whether ``value`` is bound: a parameter, or a grouping or tuple of parameters."""
    if isinstance(value, BindParameter):
        return True
    if isinstance(value, sa.Grouping):
        return _is_value(value.element)
    parts = getattr(value, "clauses", None)
    return parts is not None and all(_is_value(part) for part in parts)


def _writes_project(insert: sa.Insert, sql: str) -> bool:
    """Whether ``insert`` writes ``project_id``: among its ``VALUES`` or the columns it
    selects into, else (rows given at execution) in its compiled column list ``sql``."""
    names = {getattr(key, "name", key) for key in insert._values or ()}
    for row in insert._multi_values or ():
        for values in row:
            names |= {getattr(key, "name", key) for key in values}
    names |= set(insert._select_names or ())
    if names:
        return _COLUMN in names
    head = re.split(r"\b(?:VALUES|SELECT)\b", sql, maxsplit=1)[0]
    return re.search(rf"\b{_COLUMN}\b", head) is not None


_OWNED_NAMES: frozenset[str] = frozenset()


def _unscoped_text(sql: str) -> list[str]:
    """SQL text is judged by its words: a project-owned table it names with no
    ``project_id`` anywhere in it."""
    if re.search(rf"\b{_COLUMN}\b", sql):
        return []
    words = set(re.findall(r"[a-z_][a-z0-9_]*", sql.lower()))
    return sorted(words & _OWNED_NAMES)


def learn_tables(tables: Iterable[sa.Table]) -> None:
    """Name the project-owned tables SQL text is judged against (the store's metadata)."""
    global _OWNED_NAMES
    _OWNED_NAMES = frozenset(table.name for table in tables if owned(table))


def is_global(options: Mapping[str, Any]) -> bool:
    return bool(options.get(GLOBAL))


def judged(everywhere: str = "") -> dict[str, Any]:
    """The execution options of a view's connection: judged by :func:`watch`, and declared
    global when ``everywhere`` says why."""
    return {VIEW: True, GLOBAL: everywhere} if everywhere else {VIEW: True}


def check(stmt: ClauseElement | str, sql: str = "") -> None:
    """Refuse ``stmt`` (compiled as ``sql``; :class:`UnscopedStatement`) when it reaches a
    project-owned table without binding its project, unless it is declared global."""
    if isinstance(stmt, str):
        missing = _unscoped_text(stmt)
    elif isinstance(stmt, Executable) and is_global(stmt.get_execution_options()):
        return
    else:
        missing = unscoped(stmt, sql)
    if missing:
        raise UnscopedStatement(
            f"a statement reaches {', '.join(missing)} without binding the project "
            f"(compare project_id with the view's project, or declare it global): "
            f"{str(stmt)[:300]}"
        )


_judged: weakref.WeakKeyDictionary[Compiled, bool] = weakref.WeakKeyDictionary()


def watch(engine: sa.Engine) -> None:
    """Judge every Core statement a view's connection (:data:`VIEW`) runs on ``engine``, once
    per compiled form (SQLAlchemy reuses a statement shape's compiled form, so a repeated
    statement costs one lookup)."""

    @sa.event.listens_for(engine, "before_cursor_execute")
    def _judge(
        conn: sa.Connection,
        cursor: object,
        sql: str,
        params: object,
        context: DefaultExecutionContext,
        many: bool,
    ) -> None:
        options = context.execution_options
        compiled = getattr(context, "compiled", None)
        if compiled is None or not options.get(VIEW) or compiled in _judged:
            return
        statement = compiled.statement
        if statement is None or isinstance(statement, ExecutableDDLElement):
            return
        if is_global(options) and not is_global(statement.get_execution_options()):
            return  # a global connection's: not remembered as judged for a scoped one
        check(statement, sql)
        _judged[compiled] = True


def everywhere(stmt: _Statement, why: str) -> _Statement:
    """``stmt`` declared global (:data:`GLOBAL`): it sees every project, because ``why``."""
    return stmt.execution_options(**{GLOBAL: why})
