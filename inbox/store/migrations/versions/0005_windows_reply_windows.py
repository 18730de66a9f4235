"""reply windows: each item's and thread's platform reply window, the sweep's stage of it, and reply modes

Revision ID: 0005_windows
Revises: 0004
Create Date: 2026-12-07 06:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import inbox.store.models

revision: str = "0005_windows"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UNANNOUNCED = sa.text("window_stage < 2 AND status IN ('new', 'assigned')")


def upgrade() -> None:
    with op.batch_alter_table("item", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reply_window_closes_at", inbox.store.models.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("extended_window_closes_at", inbox.store.models.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("reply_modes", sa.JSON(), nullable=False, server_default="[]"))
        batch_op.add_column(sa.Column("after_window", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True))
    with op.batch_alter_table("thread", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reply_window_closes_at", inbox.store.models.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("window_stage", sa.Integer(), nullable=False, server_default="0"))
        batch_op.create_index(
            "ix_thread_window",
            ["reply_window_closes_at"],
            unique=False,
            sqlite_where=_UNANNOUNCED,
            postgresql_where=_UNANNOUNCED,
        )
    # Every reply so far was the ordinary one; a reply per cycle and mode from now on.
    with op.batch_alter_table("reply", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("mode", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False, server_default="reply")
        )
        batch_op.drop_constraint("uq_reply_thread_cycle", type_="unique")
        batch_op.create_unique_constraint("uq_reply_thread_cycle_mode", ["thread_id", "cycle", "mode"])


def downgrade() -> None:
    with op.batch_alter_table("reply", schema=None) as batch_op:
        batch_op.drop_constraint("uq_reply_thread_cycle_mode", type_="unique")
        batch_op.create_unique_constraint("uq_reply_thread_cycle", ["thread_id", "cycle"])
        batch_op.drop_column("mode")
    with op.batch_alter_table("thread", schema=None) as batch_op:
        batch_op.drop_index("ix_thread_window", sqlite_where=_UNANNOUNCED, postgresql_where=_UNANNOUNCED)
        batch_op.drop_column("window_stage")
        batch_op.drop_column("reply_window_closes_at")
    with op.batch_alter_table("item", schema=None) as batch_op:
        batch_op.drop_column("after_window")
        batch_op.drop_column("reply_modes")
        batch_op.drop_column("extended_window_closes_at")
        batch_op.drop_column("reply_window_closes_at")
