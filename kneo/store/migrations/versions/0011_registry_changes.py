"""Registry change marks, for incremental reconciles.

* ``registry_changes (bundle_name, environment, seq)``: every registry write made outside the
  controller (activating or deactivating a revision by hand, suspending, resuming, a
  promotion decision) stamps its key with the next change number. A reconcile reads the
  keys stamped since the number it last saw (index on ``seq``) instead of every revision.
* ``registry_change_counter``: the one row handing out those numbers; taking one updates
  the row, which serializes writers so numbers become visible in commit order.
* ``bundle_revisions (status, bundle_name, environment, revision)``: the pending promotions
  a reconcile re-checks every pass, without reading every revision; and the registry list of
  one status (active by default) in its order.

Existing databases start at change number 0 with no marks: the first reconcile after the
upgrade has no saved state and reads the whole registry anyway.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


_STATUS_INDEX = "ix_bundle_revisions_status_bundle_name_environment_revision"


def upgrade() -> None:
    op.create_table(
        "registry_changes",
        sa.Column("bundle_name", sa.String(255), primary_key=True),
        sa.Column("environment", sa.String(128), primary_key=True),
        sa.Column("seq", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_registry_changes_seq", "registry_changes", ["seq"])
    op.create_table(
        "registry_change_counter",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
    )
    op.create_index(
        _STATUS_INDEX, "bundle_revisions", ["status", "bundle_name", "environment", "revision"]
    )


def downgrade() -> None:
    op.drop_index(_STATUS_INDEX, "bundle_revisions")
    op.drop_table("registry_change_counter")
    op.drop_index("ix_registry_changes_seq", "registry_changes")
    op.drop_table("registry_changes")
