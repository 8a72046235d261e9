"""The counters of the run and task lists: ``list_counts``, kept by triggers on ``runs`` and
``continuations`` (:mod:`kneo.store.list_counts`), filled from the rows there are.

The triggers are made before the counters are filled: on PostgreSQL ``CREATE TRIGGER`` holds
off every other write of the table until this migration commits, so no row is counted twice
or missed. A later migration that rebuilds either table on SQLite (a batch copy) drops its
triggers with it and must make them again.

Revision ID: 0037
Revises: 0036
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0037"
down_revision = "0036"
branch_labels = None
depends_on = None

#: each counted table: its room, the kind it is counted by (SQL of its row), the columns
#: whose change moves its count
_COUNTED = {
    "runs": ("runs", "''", ("status", "project_id")),
    "continuations": (
        "tasks",
        "COALESCE({row}.workflow_kind, '')",
        ("status", "project_id", "workflow_kind"),
    ),
}
_KEY = "project_id, room, status, kind, shard"

# PostgreSQL: add to a row of the key no other transaction holds, else to a new one
_ADD = f"""
CREATE FUNCTION kneo_list_count_add(p integer, r text, s text, k text, d bigint)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    free integer;
BEGIN
    SELECT shard INTO free FROM list_counts
    WHERE project_id = p AND room = r AND status = s AND kind = k
    LIMIT 1 FOR UPDATE SKIP LOCKED;
    IF FOUND THEN
        UPDATE list_counts SET n = n + d
        WHERE project_id = p AND room = r AND status = s AND kind = k AND shard = free;
    ELSE
        INSERT INTO list_counts ({_KEY}, n)
        VALUES (p, r, s, k, floor(random() * 2147483647)::integer, d)
        ON CONFLICT ({_KEY}) DO UPDATE SET n = list_counts.n + EXCLUDED.n;
    END IF;
END $$
"""


def _changed(columns: tuple[str, ...], distinct: str) -> str:
    return " OR ".join(f"OLD.{c} {distinct} NEW.{c}" for c in columns)


def _sqlite(table: str) -> list[str]:
    room, kind, columns = _COUNTED[table]

    def add(row: str, delta: int) -> str:
        return (
            f"INSERT INTO list_counts ({_KEY}, n) VALUES ({row}.project_id, '{room}', "
            f"{row}.status, {kind.format(row=row)}, 0, {delta}) "
            f"ON CONFLICT ({_KEY}) DO UPDATE SET n = n + excluded.n;"
        )

    name = f"list_counts_{table}"
    moved = ", ".join(columns)
    return [
        f"CREATE TRIGGER {name}_insert AFTER INSERT ON {table} BEGIN {add('NEW', 1)} END",
        f"CREATE TRIGGER {name}_delete AFTER DELETE ON {table} BEGIN {add('OLD', -1)} END",
        f"CREATE TRIGGER {name}_update AFTER UPDATE OF {moved} ON {table} "
        f"WHEN {_changed(columns, 'IS NOT')} BEGIN {add('OLD', -1)} {add('NEW', 1)} END",
    ]


def _postgresql(table: str) -> list[str]:
    room, kind, columns = _COUNTED[table]

    def add(row: str, delta: int) -> str:
        return (
            f"PERFORM kneo_list_count_add({row}.project_id, '{room}', {row}.status, "
            f"{kind.format(row=row)}, {delta});"
        )

    name = f"list_counts_{table}"
    function = (
        f"CREATE FUNCTION kneo_{name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"IF TG_OP <> 'INSERT' THEN {add('OLD', -1)} END IF; "
        f"IF TG_OP <> 'DELETE' THEN {add('NEW', 1)} END IF; "
        "RETURN NULL; END $$"
    )
    run = f"FOR EACH ROW EXECUTE FUNCTION kneo_{name}()"
    return [
        function,
        f"CREATE TRIGGER {name} AFTER INSERT OR DELETE ON {table} {run}",
        f"CREATE TRIGGER {name}_update AFTER UPDATE OF {', '.join(columns)} ON {table} "
        f"FOR EACH ROW WHEN ({_changed(columns, 'IS DISTINCT FROM')}) "
        f"EXECUTE FUNCTION kneo_{name}()",
    ]


def upgrade() -> None:
    op.create_table(
        "list_counts",
        sa.Column("project_id", sa.Integer, nullable=False, server_default=sa.text("1")),
        sa.Column("room", sa.String(8), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("shard", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("n", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint(*_KEY.split(", "), name="pk_list_counts"),
        sqlite_with_rowid=False,
    )
    postgresql = op.get_context().dialect.name == "postgresql"
    if postgresql:
        op.execute(_ADD)
    for table in _COUNTED:
        for statement in _postgresql(table) if postgresql else _sqlite(table):
            op.execute(statement)
    for table, (room, kind, _) in _COUNTED.items():
        by = "" if kind == "''" else f", {kind.format(row=table)}"  # (not by a constant)
        op.execute(
            f"INSERT INTO list_counts ({_KEY}, n) "
            f"SELECT project_id, '{room}', status, {kind.format(row=table)}, 0, count(*) "
            f"FROM {table} GROUP BY project_id, status{by}"
        )


def downgrade() -> None:
    postgresql = op.get_context().dialect.name == "postgresql"
    for table in _COUNTED:
        name = f"list_counts_{table}"
        if postgresql:
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {name}_update ON {table}")
            op.execute(f"DROP FUNCTION IF EXISTS kneo_{name}()")
        else:
            for event in ("insert", "delete", "update"):
                op.execute(f"DROP TRIGGER IF EXISTS {name}_{event}")
    if postgresql:
        op.execute("DROP FUNCTION IF EXISTS kneo_list_count_add(integer, text, text, text, bigint)")
    op.drop_table("list_counts")
