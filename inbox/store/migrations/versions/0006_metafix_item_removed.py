"""item removed: when the platform reported the customer's item removed (a deleted Facebook comment), so it is no
longer answered

Revision ID: 0006_metafix
Revises: 0005_meta
Create Date: 2026-12-07 14:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import inbox.store.models

revision: str = "0006_metafix"
down_revision: str | None = "0005_meta"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("item", schema=None) as batch_op:
        batch_op.add_column(sa.Column("removed_at", inbox.store.models.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("item", schema=None) as batch_op:
        batch_op.drop_column("removed_at")
