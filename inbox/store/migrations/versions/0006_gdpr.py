"""gdpr: when a customer and a conversation were erased, and the record of each erasure (never whom)

Revision ID: 0006_gdpr
Revises: 0006_reportpage
Create Date: 2026-12-07 14:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import inbox.store.models

revision: str = "0006_gdpr"
down_revision: str | None = "0006_reportpage"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "erasure",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", inbox.store.models.UTCDateTime(), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("by", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("customers", sa.Integer(), nullable=False),
        sa.Column("threads", sa.Integer(), nullable=False),
        sa.Column("items", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("customer", schema=None) as batch_op:
        batch_op.add_column(sa.Column("erased_at", inbox.store.models.UTCDateTime(), nullable=True))
    with op.batch_alter_table("thread", schema=None) as batch_op:
        batch_op.add_column(sa.Column("erased_at", inbox.store.models.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("thread", schema=None) as batch_op:
        batch_op.drop_column("erased_at")
    with op.batch_alter_table("customer", schema=None) as batch_op:
        batch_op.drop_column("erased_at")
    op.drop_table("erasure")
