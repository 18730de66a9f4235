"""report digest: one row per week's summary to the leads, written before it is posted

Revision ID: 0006_reportpage
Revises: 0006_reports
Create Date: 2026-12-07 14:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import inbox.store.models

revision: str = "0006_reportpage"
down_revision: str | None = "0006_reports"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "report_digest",
        sa.Column("week", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("title", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("claimed_by", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
        sa.Column("claimed_until", inbox.store.models.UTCDateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("ts", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("file_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("posted_at", inbox.store.models.UTCDateTime(), nullable=True),
        sa.Column("created_at", inbox.store.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("week"),
    )


def downgrade() -> None:
    op.drop_table("report_digest")
