"""GitOps registry: bundle revisions (at most one active per bundle and environment),
status conditions, suspensions, controller status and promotion approvals.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "bundle_revisions",
        sa.Column("bundle_name", sa.String(255), nullable=False),
        sa.Column("environment", sa.String(128), nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("digest", sa.String(128), nullable=False),
        sa.Column("commit", sa.String(128)),
        sa.Column("signer_key_ids", sa.Text, nullable=False),
        sa.Column("approved_by", sa.Text, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("diagnostics", sa.Text, nullable=False),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("activated_at", TS),
        sa.Column("deactivated_at", TS),
        sa.PrimaryKeyConstraint(
            "bundle_name", "environment", "revision", name="pk_bundle_revisions"
        ),
    )
    op.create_index(
        "ix_bundle_revisions_environment_status", "bundle_revisions", ["environment", "status"]
    )
    op.create_index(
        "ix_bundle_revisions_bundle_name_environment_digest",
        "bundle_revisions",
        ["bundle_name", "environment", "digest"],
    )
    op.create_index(
        "uq_bundle_revisions_one_active",
        "bundle_revisions",
        ["bundle_name", "environment"],
        unique=True,
        sqlite_where=sa.text("status = 'active'"),
        postgresql_where=sa.text("status = 'active'"),
    )

    op.create_table(
        "bundle_conditions",
        sa.Column("bundle_name", sa.String(255), nullable=False),
        sa.Column("environment", sa.String(128), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(128), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("last_transition_time", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("bundle_name", "environment", "type", name="pk_bundle_conditions"),
    )

    op.create_table(
        "bundle_suspensions",
        sa.Column("bundle_name", sa.String(255), nullable=False),
        sa.Column("environment", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("suspended_by", sa.String(255)),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("bundle_name", "environment", name="pk_bundle_suspensions"),
    )

    op.create_table(
        "controller_status",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("last_fetched_commit", sa.String(128)),
        sa.Column("last_reconcile_started_at", TS),
        sa.Column("last_reconcile_duration_seconds", sa.Float),
        sa.Column("last_error", sa.Text),
        sa.Column("details", sa.Text, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_controller_status"),
    )

    op.create_table(
        "promotion_approvals",
        sa.Column("id", BIG_ID, nullable=False, autoincrement=True),
        sa.Column("bundle_name", sa.String(255), nullable=False),
        sa.Column("environment", sa.String(128), nullable=False),
        sa.Column("digest", sa.String(128), nullable=False),
        sa.Column("approver", sa.String(255), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("comment", sa.Text),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_promotion_approvals"),
        sa.UniqueConstraint(
            "bundle_name",
            "environment",
            "digest",
            "approver",
            name="uq_promotion_approvals_bundle_name_environment_digest_approver",
        ),
    )


def downgrade() -> None:
    for table in (
        "promotion_approvals",
        "controller_status",
        "bundle_suspensions",
        "bundle_conditions",
        "bundle_revisions",
    ):
        op.drop_table(table)
