"""sweep and queue indexes: one partial index per sweep step, and one for the open queue

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_RUNNING = sa.text("sla_stage < 2")
_UNWARNED = sa.text("sla_stage < 1")
_OPEN = sa.text("status IN ('new', 'assigned')")


def upgrade() -> None:
    with op.batch_alter_table("thread", schema=None) as batch_op:
        batch_op.drop_index("ix_thread_sla_open", sqlite_where=_RUNNING, postgresql_where=_RUNNING)
        batch_op.create_index(
            "ix_thread_sla_due", ["due_at"], unique=False, sqlite_where=_RUNNING, postgresql_where=_RUNNING
        )
        batch_op.create_index(
            "ix_thread_sla_warn", ["warn_at"], unique=False, sqlite_where=_UNWARNED, postgresql_where=_UNWARNED
        )
        batch_op.create_index("ix_thread_open", ["due_at"], unique=False, sqlite_where=_OPEN, postgresql_where=_OPEN)


def downgrade() -> None:
    with op.batch_alter_table("thread", schema=None) as batch_op:
        batch_op.drop_index("ix_thread_open", sqlite_where=_OPEN, postgresql_where=_OPEN)
        batch_op.drop_index("ix_thread_sla_warn", sqlite_where=_UNWARNED, postgresql_where=_UNWARNED)
        batch_op.drop_index("ix_thread_sla_due", sqlite_where=_RUNNING, postgresql_where=_RUNNING)
        batch_op.create_index(
            "ix_thread_sla_open", ["warn_at"], unique=False, sqlite_where=_RUNNING, postgresql_where=_RUNNING
        )
