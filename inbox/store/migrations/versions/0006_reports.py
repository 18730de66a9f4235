"""reports: each conversation's first-response deadline and target as opened, its next responses met and missed

Revision ID: 0006_reports
Revises: 0006_metafix
Create Date: 2026-12-07 14:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import inbox.store.models

revision: str = "0006_reports"
down_revision: str | None = "0006_metafix"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("thread", schema=None) as batch_op:
        batch_op.add_column(sa.Column("first_due_at", inbox.store.models.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("sla_target_minutes", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("next_met", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("next_missed", sa.Integer(), nullable=False, server_default="0"))
        batch_op.create_index("ix_thread_opened_at", ["opened_at"], unique=False)
    # A conversation still on its first clock has that clock's deadline; the others' was overwritten (unknown).
    op.execute(
        "UPDATE thread SET first_due_at = due_at WHERE first_due_at IS NULL AND cycle = 1 "
        "AND clock_kind = 'first_response'"
    )


def downgrade() -> None:
    with op.batch_alter_table("thread", schema=None) as batch_op:
        batch_op.drop_index("ix_thread_opened_at")
        batch_op.drop_column("next_missed")
        batch_op.drop_column("next_met")
        batch_op.drop_column("sla_target_minutes")
        batch_op.drop_column("first_due_at")
