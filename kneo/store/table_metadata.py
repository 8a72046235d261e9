"""The :class:`~sqlalchemy.MetaData` every table of the store is on, with what many tables
share: the naming convention of their constraints and indexes, the id and search-term
types, the ``project_id`` column, and the partial indexes' PostgreSQL option.

Each room's tables are in its own module (``kneo.store.tables_<room>``, or the room's own
for the tables only it reads and writes); :mod:`kneo.store.tables` gathers them.
"""

from __future__ import annotations

import sqlalchemy as sa

from kneo.projects import DEFAULT_PROJECT_ID

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
#: A search term (``kneo.store.tasks.search``): up to 40 characters, and up to 8 more for a
#: project other than the default's prefix (:func:`~kneo.store.tasks.search.scoped_term`).
#: Declared 40 on SQLite, which never enforces a length: the migration that widened it
#: (0026) rewrote neither big table there; PostgreSQL widens a ``varchar`` in its catalog.
Term = sa.String(40).with_variant(sa.String(48), "postgresql")


def project_column(*, key: bool = False, nullable: bool = False) -> sa.Column[int]:
    """``project_id``: the project a row belongs to (``projects.id``; migration 0026), first
    of the primary key when ``key``. Every row written before projects is the default
    project's, the server default; SQLite stores the integer 1 in no payload byte (its
    record header says "1")."""
    if nullable:
        return sa.Column("project_id", sa.Integer)
    default = sa.text(str(DEFAULT_PROJECT_ID))
    return sa.Column(
        "project_id", sa.Integer, nullable=False, server_default=default, primary_key=key,
        autoincrement=False,
    )  # fmt: skip


def use_postgresql_options() -> None:
    """Give every partial index its ``WHERE`` on PostgreSQL too: the tables declare it once,
    as SQLite's option, because naming a PostgreSQL option here would import that whole
    dialect, which SQLite-only processes never need (called when a PostgreSQL store opens;
    idempotent)."""
    for table in metadata.tables.values():
        for index in table.indexes:
            where = index.dialect_options["sqlite"]["where"]
            if where is not None:
                index.dialect_options["postgresql"]["where"] = where
