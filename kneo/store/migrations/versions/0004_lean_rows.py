"""Fewer bytes and B-tree pages per write: WITHOUT ROWID tables, no unused indexes.

* SQLite: ``checkpoints``, ``trace_events`` and ``continuation_requests`` (composite text
  primary keys) become WITHOUT ROWID tables, so rows live in their primary-key B-tree and the
  separate ``sqlite_autoindex_*`` copy of every key disappears. SQLite cannot change this in
  place: each table is rebuilt (create, copy, drop, rename) inside the upgrade transaction,
  rows unchanged.
* Both backends: ``ix_checkpoints_created_at`` (retention now deletes checkpoints by run,
  through the primary key) and ``ix_runs_updated_at`` (rewritten at every step boundary, read
  only by listing runs sorted by ``updated_at``, which now sorts the matching rows) are
  dropped.

Checkpoint rows may also hold patches from now on (``encoding`` ``delta``/``zlib+delta``, see
``kneo.store.runs.delta``); that needs no schema change, and rows written before stay keyframes.
The downgrade turns every patch row back into the keyframe it stands for.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.schema import SchemaItem

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def _checkpoints() -> tuple[list[SchemaItem], list[str]]:
    return [
        sa.Column("run_id", sa.String(128), nullable=False),
        sa.Column("sequence", sa.Integer, nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("step_id", sa.String(255)),
        sa.Column("status", sa.String(32)),
        sa.Column("encoding", sa.String(16), nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("size_bytes", sa.Integer, nullable=False),
        sa.Column("truncated", sa.Boolean, nullable=False),
        sa.Column("metadata", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "sequence", name="pk_checkpoints"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.run_id"], ondelete="CASCADE", name="fk_checkpoints_run_id_runs"
        ),
    ], []


def _trace_events() -> tuple[list[SchemaItem], list[str]]:
    return [
        sa.Column("run_id", sa.String(128), nullable=False),
        sa.Column("sequence", sa.Integer, nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("step_id", sa.String(255)),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "sequence", name="pk_trace_events"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.run_id"], ondelete="CASCADE", name="fk_trace_events_run_id_runs"
        ),
    ], []


def _continuation_requests() -> tuple[list[SchemaItem], list[str]]:
    return [
        sa.Column("continuation_id", sa.String(128), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(64)),
        sa.Column("assignee", sa.String(255)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("continuation_id", "request_id", name="pk_continuation_requests"),
        sa.ForeignKeyConstraint(
            ["continuation_id"],
            ["continuations.continuation_id"],
            ondelete="CASCADE",
            name="fk_continuation_requests_continuation_id_continuations",
        ),
    ], ["ix_continuation_requests_assignee_status", "ix_continuation_requests_request_id"]


_INDEXES = {
    "ix_continuation_requests_assignee_status": ["assignee", "status"],
    "ix_continuation_requests_request_id": ["request_id"],
}
_TABLES = {
    "checkpoints": _checkpoints,
    "trace_events": _trace_events,
    "continuation_requests": _continuation_requests,
}


def _rebuild(table: str, with_rowid: bool) -> None:
    """Recreate ``table`` with or without SQLite's rowid, copying every row."""
    items, indexes = _TABLES[table]()
    columns = ", ".join(c.name for c in items if isinstance(c, sa.Column))
    scratch = f"_kneo_new_{table}"
    op.create_table(scratch, *items, sqlite_with_rowid=with_rowid)
    op.execute(f"INSERT INTO {scratch} ({columns}) SELECT {columns} FROM {table}")
    for index in indexes:
        op.drop_index(index, table_name=table)
    op.drop_table(table)
    op.rename_table(scratch, table)
    for index in indexes:
        op.create_index(index, table, _INDEXES[index])


def upgrade() -> None:
    op.drop_index("ix_checkpoints_created_at", table_name="checkpoints")
    op.drop_index("ix_runs_updated_at", table_name="runs")
    if op.get_bind().dialect.name == "sqlite":
        for table in _TABLES:
            _rebuild(table, with_rowid=False)


_CHECKPOINT_ROWS = sa.table(
    "checkpoints",
    sa.column("run_id", sa.String),
    sa.column("sequence", sa.Integer),
    sa.column("encoding", sa.String),
    sa.column("payload", sa.LargeBinary),
    sa.column("size_bytes", sa.Integer),
    sa.column("truncated", sa.Boolean),
)


def _patches_to_keyframes() -> None:
    """A Kneo from before 0004 reads keyframes only: each patch row becomes the keyframe it
    stands for (its chain folded, plain JSON), or, when its chain is broken, the preview
    readers show for it."""
    from kneo.store.runs import chains, payloads

    conn = op.get_bind()
    c = _CHECKPOINT_ROWS.c
    patch = c.encoding.in_([payloads.ENCODING_DELTA, payloads.ENCODING_ZLIB_DELTA])
    run_ids = conn.execute(sa.select(c.run_id).where(patch).distinct()).scalars().all()
    for run_id in run_ids:
        chain = conn.execute(
            sa.select(c.sequence, c.encoding, c.payload)
            .where(c.run_id == run_id)
            .order_by(c.sequence)
        ).all()
        wanted = {int(row[0]) for row in chain if payloads.is_patch(row[1])}
        folded: dict[int, dict[str, object]] = {}
        chains.fold(chain, wanted, folded)
        for sequence in sorted(wanted):
            state = folded.get(sequence)
            data = payloads.dumps(state if state is not None else chains.UNAVAILABLE)
            conn.execute(
                sa.update(_CHECKPOINT_ROWS)
                .where(c.run_id == run_id, c.sequence == sequence)
                .values(
                    encoding=payloads.ENCODING_JSON,
                    payload=data,
                    size_bytes=len(data),
                    truncated=state is None,
                )
            )


def downgrade() -> None:
    _patches_to_keyframes()
    if op.get_bind().dialect.name == "sqlite":
        for table in _TABLES:
            _rebuild(table, with_rowid=True)
    op.create_index("ix_runs_updated_at", "runs", ["updated_at"])
    op.create_index("ix_checkpoints_created_at", "checkpoints", ["created_at"])
