"""The raw write path's statement cache: :class:`StatementCache`, one per store's dialect.

Every statement the write path runs (:mod:`kneo.store.wire.statements`, the registry's) is a
SQLAlchemy Core statement built once per key, compiled once for the store's database
(:func:`named_sql`) and kept as SQL text in the driver's positional style with the
parameter name each placeholder takes (:class:`Text`). Values pass through the Core column
types' own bind and result processors, resolved once per column (:meth:`StatementCache.bind`,
:meth:`~StatementCache.result`), so nothing is built, cache-keyed or compiled per call and no
SQLAlchemy connection, result or event machinery runs.
"""

from __future__ import annotations

import copy
import functools
import itertools
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

from kneo.store import tables as t
from kneo.store.wire import tenancy

_NAMED = re.compile(r":([a-z_][a-z0-9_]*)")
_flatten = itertools.chain.from_iterable
_Proc = Callable[[Any], Any] | None

#: A multi-row INSERT takes up to :data:`EXACT_ROWS` rows in one statement, and longer lists
#: in power-of-two chunks of at most :data:`MAX_ROWS_PER_INSERT`: a table has a dozen
#: statement texts at most, all kept prepared by the driver's statement cache.
EXACT_ROWS = 8
MAX_ROWS_PER_INSERT = 32
#: Parameters named so are not looked up by name: the caller passes them positionally,
#: after the named ones (the rows of a one-statement write, see :meth:`StatementCache.text`).
ROW = "row_"


class Text(NamedTuple):
    """A statement with positional placeholders and the parameter name each one takes."""

    sql: str
    names: tuple[str, ...]

    def args(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(map(params.__getitem__, self.names))


def named_sql(stmt: ClauseElement, db: Dialect) -> str:
    """``stmt`` compiled for ``db`` with ``:name`` parameters: the values are bound by the
    columns' own processors (:meth:`StatementCache.bind`). On PostgreSQL the text keeps the
    bind casts SQLAlchemy's psycopg dialect renders (``%s::VARCHAR``), as its own statements do.

    A parameter that is not a plain named one (an anonymous literal, which no caller
    passes) is a programming error, found here when the statement is first built."""
    named = copy.copy(db)
    named.paramstyle, named.positional = "named", False
    compiled = stmt.compile(dialect=named)
    assert isinstance(compiled, SQLCompiler)
    for bind, name in compiled.bind_names.items():
        if not _NAMED.fullmatch(":" + name) or bind.value is not None or bind.callable:
            raise ValueError(f"statement parameter {name!r} is not a plain named parameter")
    if "%" in compiled.string or "$" in compiled.string:  # each means a parameter to a driver
        raise ValueError("a write statement may not contain '%' or '$'")
    return compiled.string


def chunks(rows: Sequence[Any]) -> Iterator[Sequence[Any]]:
    """``rows`` in chunks: all of them up to :data:`EXACT_ROWS`, else power-of-two sizes."""
    start, left = 0, len(rows)
    while left:
        size = (
            left if left <= EXACT_ROWS else min(MAX_ROWS_PER_INSERT, 1 << (left.bit_length() - 1))
        )
        yield rows[start : start + size]
        start, left = start + size, left - size


class StatementCache:
    """Statements and processors for one engine's dialect (:attr:`db`), each made once."""

    #: the driver's positional placeholder
    mark: str = "?"
    #: placeholders numbered ``$1, $2 ...`` instead (PostgreSQL's own form: psycopg's raw
    #: cursor sends the text as it is, with no parse of it per call)
    numbered: bool = False

    def __init__(self) -> None:
        #: the engine's SQLAlchemy dialect, set when the engine is made
        self.db: Dialect = sa.engine.default.DefaultDialect()
        self._texts: dict[Any, Text] = {}
        self._binds: dict[str, dict[str, _Proc]] = {}
        self._readers: dict[
            tuple[str, str, int | None], Callable[[Sequence[Any]], dict[str, Any]]
        ] = {}
        self._statements: dict[Any, Any] = {}
        #: spec JSON text by content digest: immutable once written, so caching it is right
        self.spec_texts: dict[str, str] = {}

    def memo(self, key: Any, build: Callable[[], Any]) -> Any:
        """``build()`` (a Core statement run on a SQLAlchemy connection) made once per
        ``key``: SQLAlchemy builds and cache-keys a statement made per call at every call."""
        found = self._statements.get(key)
        if found is None:
            found = self._statements[key] = build()
        return found

    def spec_text(self, digest: str, read: Callable[[], str | None]) -> str | None:
        """The stored JSON text of the spec with ``digest``: cached, else ``read()``."""
        text = self.spec_texts.get(digest)
        if text is None:
            text = read()
            if text is None:
                return None
            if len(self.spec_texts) >= 256:
                self.spec_texts.clear()
            self.spec_texts[digest] = text
        return text

    def text(self, key: Any, build: Callable[[], ClauseElement | str]) -> Text:
        """``build()``'s statement (Core, or SQL text with ``:name`` parameters) in the
        driver's positional style, built and compiled once per ``key``. Its
        :data:`ROW`-named parameters come last and are left out of :attr:`Text.names`."""
        found = self._texts.get(key)
        if found is None:
            stmt = build()
            sql = stmt if isinstance(stmt, str) else named_sql(stmt, self.db)
            tenancy.check(stmt, sql)
            names: list[str] = []

            def mark(match: re.Match[str]) -> str:
                names.append(match.group(1))
                return f"${len(names)}" if self.numbered else self.mark

            sql = _NAMED.sub(mark, sql)
            named = [n for n in names if not n.startswith(ROW)]
            if names[: len(named)] != named:
                raise ValueError(f"{ROW}parameters must come last: {names}")
            found = self._texts[key] = Text(sql, tuple(named))
        return found

    def insert_rows(
        self,
        execute: Callable[[str, tuple[Any, ...]], object],
        table: sa.Table,
        names: tuple[str, ...],
        rows: Sequence[Sequence[Any]],
    ) -> None:
        """Positional ``rows`` of ``table``'s ``names`` as multi-row ``VALUES`` inserts run
        with ``execute(sql, params)``: one execution per chunk (:func:`chunks`) instead of
        one per row as with ``executemany``."""
        if not rows:
            return
        for chunk in (rows,) if len(rows) <= EXACT_ROWS else chunks(rows):
            key = ("rows", table.name, names, len(chunk))
            text = self._texts.get(key)
            if text is None:
                text = self.text(key, functools.partial(_rows_insert, table, names, len(chunk)))
            execute(text.sql, tuple(_flatten(chunk)))

    def _procs(self, table: sa.Table) -> dict[str, _Proc]:
        """``table``'s bind processors by column (``None``: pass as is), resolved once: the
        column types' own, as Core's statements bind
        (:func:`~kneo.store.column_types.value_binder`)."""
        found = self._binds.get(table.name)
        if found is None:
            db = self.db
            found = self._binds[table.name] = {c.name: t.value_binder(c.type, db) for c in table.c}
        return found

    def binder(self, table: sa.Table, name: str) -> Callable[[Any], Any]:
        """What a column's bind processor does to a value that is not ``None``."""
        return self._procs(table)[name] or _same

    def bind(self, table: sa.Table, values: Mapping[str, Any]) -> dict[str, Any]:
        """``values`` as the driver takes them (the columns' bind processors)."""
        procs = self._procs(table)
        out = {}
        for name, value in values.items():
            proc = procs[name]
            out[name] = proc(value) if proc is not None and value is not None else value
        return out

    def reader(
        self, table: sa.Table, executor: Any, start: int | None = None
    ) -> Callable[[Sequence[Any]], dict[str, Any]]:
        """How to read a row of ``table`` that the executor's last statement returned: the
        columns' result processors in its column order, made from the cursor's description
        once per statement text (psycopg builds a description's columns anew at every read
        of it, 80 objects per resume). ``start``: the row is a join's, ``table``'s columns
        all of them in their table's order from that position on."""
        key = (table.name, str(executor.last_sql), start)
        found = self._readers.get(key)
        if found is None:
            described = executor.cursor.description
            if start is None:
                named = [(d[0], d[1]) for d in described]
            else:
                part = described[start : start + len(table.c)]
                named = [(c.name, d[1]) for c, d in zip(table.c, part, strict=True)]
            names = tuple(name for name, _ in named)
            procs = tuple(t.value_reader(table.c[n].type, self.db, code) for n, code in named)
            read = functools.partial(_read_row, names, procs)
            if start is not None:
                end = start + len(names)
                found = self._readers[key] = lambda row: read(row[start:end])
            else:
                found = self._readers[key] = read
        return found

    def rows(self, table: sa.Table, executor: Any, found: list[Any]) -> list[dict[str, Any]]:
        """``found``, the rows the executor's last statement returned (fetched first: in
        psycopg's pipeline a description is known once its result is), read by
        :meth:`reader`."""
        return list(map(self.reader(table, executor), found)) if found else []


def _read_row(
    names: tuple[str, ...], procs: tuple[_Proc, ...], row: Sequence[Any]
) -> dict[str, Any]:
    out = {}
    for name, proc, value in zip(names, procs, row, strict=True):
        out[name] = proc(value) if proc is not None else value
    return out


def _rows_insert(table: sa.Table, names: Sequence[str], count: int) -> ClauseElement:
    """``count`` rows of ``names`` in one ``INSERT``, their parameters positional."""
    rows: list[dict[str, Any]] = [
        {n: sa.bindparam(f"{ROW}{i}_{n}") for n in names} for i in range(count)
    ]
    return sa.insert(table).values(rows)


def _same(value: Any) -> Any:
    return value
