"""csat: one satisfaction question per conversation, and a review's stars before and after

Revision ID: 0005_csat
Revises: 0004
Create Date: 2026-12-07 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

from inbox.store.models import UTCDateTime

revision: str = "0005_csat"
down_revision: str | None = "0005_windows"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DUE = sa.text("status IN ('scheduled', 'sending')")


def upgrade() -> None:
    op.create_table(
        "csat_question",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("thread_id", sa.Integer(), nullable=False),
        sa.Column("connector", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("language", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("ask_at", UTCDateTime(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("text", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claimed_by", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
        sa.Column("claimed_until", UTCDateTime(), nullable=True),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
        sa.Column("external_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("error", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("score", sa.Integer(), nullable=True),
        sa.Column("answer_item_id", sa.Integer(), nullable=True),
        sa.Column("answered_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["thread_id"], ["thread.id"]),
        sa.ForeignKeyConstraint(["answer_item_id"], ["item.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("thread_id"),
    )
    with op.batch_alter_table("csat_question", schema=None) as batch_op:
        batch_op.create_index(
            "ix_csat_question_due", ["ask_at"], unique=False, sqlite_where=_DUE, postgresql_where=_DUE
        )
        batch_op.create_index("ix_csat_question_sent_at", ["sent_at"], unique=False)
    with op.batch_alter_table("thread", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rating_before", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("rating_after", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("thread", schema=None) as batch_op:
        batch_op.drop_column("rating_after")
        batch_op.drop_column("rating_before")
    with op.batch_alter_table("csat_question", schema=None) as batch_op:
        batch_op.drop_index("ix_csat_question_sent_at")
        batch_op.drop_index("ix_csat_question_due", sqlite_where=_DUE, postgresql_where=_DUE)
    op.drop_table("csat_question")
