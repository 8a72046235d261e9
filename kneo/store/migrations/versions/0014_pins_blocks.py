"""Day-two GitOps: pins and blocked digests.

* ``bundle_pins (bundle_name, environment)``: the revision a bundle is held at in one
  environment (``kneo registry pin``, or a rollback, which pins its target). The controller
  promotes nothing else there until the pin is lifted.
* ``blocked_digests (digest)``: spec digests never promoted again, in any environment, with
  the reason and who blocked them, until unblocked.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "bundle_pins",
        sa.Column("bundle_name", sa.String(255), nullable=False),
        sa.Column("environment", sa.String(128), nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("digest", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("pinned_by", sa.String(255)),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("bundle_name", "environment", name="pk_bundle_pins"),
    )
    op.create_table(
        "blocked_digests",
        sa.Column("digest", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("blocked_by", sa.String(255)),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("digest", name="pk_blocked_digests"),
    )


def downgrade() -> None:
    op.drop_table("blocked_digests")
    op.drop_table("bundle_pins")
