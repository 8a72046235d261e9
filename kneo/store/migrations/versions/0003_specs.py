"""Content-addressed specs: each resolved spec stored once, runs reference it by ``spec_ref``.

Creates ``specs`` (``digest`` = sha256 of the spec's stored JSON text), adds the nullable
``runs.spec_ref`` and moves every existing run's spec there (``runs.spec`` becomes ``{}``).
A run row without ``spec_ref`` is still read with its inline spec, so the backfill is not
required for correctness; it only reclaims the space.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

from kneo.store.migrate import drop_columns

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
_BATCH = 500


def upgrade() -> None:
    op.create_table(
        "specs",
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("digest", name="pk_specs"),
    )
    op.add_column("runs", sa.Column("spec_ref", sa.String(64)))
    _backfill()


def _backfill() -> None:
    conn = op.get_bind()
    runs = sa.table(
        "runs",
        sa.column("run_id", sa.String),
        sa.column("spec", sa.Text),
        sa.column("spec_ref", sa.String),
        sa.column("created_at", TS),
    )
    specs = sa.table(
        "specs",
        sa.column("digest", sa.String),
        sa.column("spec", sa.Text),
        sa.column("created_at", TS),
    )
    known: set[str] = set()
    last = ""
    while True:
        batch = conn.execute(
            sa.select(runs.c.run_id, runs.c.spec, runs.c.created_at)
            .where(runs.c.run_id > last, runs.c.spec_ref.is_(None), runs.c.spec != "{}")
            .order_by(runs.c.run_id)
            .limit(_BATCH)
        ).all()
        if not batch:
            return
        for run_id, text, created_at in batch:
            digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
            if digest not in known:
                exists = conn.execute(
                    sa.select(specs.c.digest).where(specs.c.digest == digest)
                ).first()
                if exists is None:
                    conn.execute(
                        sa.insert(specs).values(digest=digest, spec=text, created_at=created_at)
                    )
                known.add(digest)
            conn.execute(
                sa.update(runs).where(runs.c.run_id == run_id).values(spec="{}", spec_ref=digest)
            )
        last = batch[-1][0]


def downgrade() -> None:
    op.execute(
        "UPDATE runs SET spec = (SELECT specs.spec FROM specs "
        "WHERE specs.digest = runs.spec_ref) WHERE spec_ref IS NOT NULL"
    )
    drop_columns("runs", "spec_ref")
    op.drop_table("specs")
