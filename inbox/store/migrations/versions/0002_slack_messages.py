"""slack messages: the triage message per thread and one post per outbox event

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import inbox.store.models

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "slackmessage",
        sa.Column("thread_id", sa.Integer(), nullable=False),
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("ts", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("created_at", inbox.store.models.UTCDateTime(), nullable=False),
        sa.Column("updated_at", inbox.store.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["thread_id"],
            ["thread.id"],
        ),
        sa.PrimaryKeyConstraint("thread_id"),
    )
    with op.batch_alter_table("slackmessage", schema=None) as batch_op:
        batch_op.create_index("ix_slackmessage_channel_ts", ["channel", "ts"], unique=False)

    op.create_table(
        "slackpost",
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("ts", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("created_at", inbox.store.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["event.id"],
        ),
        sa.PrimaryKeyConstraint("event_id"),
    )


def downgrade() -> None:
    op.drop_table("slackpost")
    with op.batch_alter_table("slackmessage", schema=None) as batch_op:
        batch_op.drop_index("ix_slackmessage_channel_ts")
    op.drop_table("slackmessage")
