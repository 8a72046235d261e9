"""Reconcile requests queued for the leading controller.

* ``controller_requests``: a verified webhook or ``POST /v1/controller/reconcile`` on any
  API replica writes one row (``queued``); the controller holding the leader lock takes the
  queued rows of its name at the start of a pass (``running``) and records the pass's
  result on them (``done``). The index serves both the leader's "anything queued?" and the
  status route's counts.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "controller_requests",
        sa.Column("id", BIG_ID, nullable=False, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(255)),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("taken_by", sa.String(255)),
        sa.Column("requested_at", TS, nullable=False),
        sa.Column("started_at", TS),
        sa.Column("finished_at", TS),
        sa.Column("result", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_controller_requests"),
    )
    op.create_index("ix_controller_requests_name_status", "controller_requests", ["name", "status"])


def downgrade() -> None:
    op.drop_table("controller_requests")
