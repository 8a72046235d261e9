"""Daily usage per project: ``project_usage``.

One row per project and UTC day on which a project with a daily budget (``limits:
max_model_calls_per_day`` / ``max_tokens_per_day``) called a model: the model calls and
tokens counted so far, and the day's limits as a person raised them at a budget pause
(``NULL``: the definition's). A project without a daily budget never writes a row.

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "project_usage",
        sa.Column("project_id", sa.Integer, nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("model_calls", sa.BigInteger, nullable=False),
        sa.Column("tokens", sa.BigInteger, nullable=False),
        sa.Column("model_calls_limit", sa.BigInteger),
        sa.Column("tokens_limit", sa.BigInteger),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("project_id", "day", name="pk_project_usage"),
    )


def downgrade() -> None:
    op.drop_table("project_usage")
