"""reply delivery: what the platform reports of a sent reply (WhatsApp statuses), found by its id there

Revision ID: 0005_meta
Revises: 0004
Create Date: 2026-12-07 06:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import inbox.store.models

revision: str = "0005_meta"
down_revision: str | None = "0005_windows"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("reply", schema=None) as batch_op:
        batch_op.add_column(sa.Column("delivery", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True))
        batch_op.add_column(sa.Column("delivery_at", inbox.store.models.UTCDateTime(), nullable=True))
        batch_op.create_index("ix_reply_external_id", ["external_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("reply", schema=None) as batch_op:
        batch_op.drop_index("ix_reply_external_id")
        batch_op.drop_column("delivery_at")
        batch_op.drop_column("delivery")
