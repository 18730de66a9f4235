"""reportspeed: each thread's first-response minutes as a generated column, indexed with its opening time

Revision ID: 0007_reportspeed
Revises: 0006_gdpr
Create Date: 2026-12-07 18:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from inbox.store.models import WAITED_MINUTES

revision: str = "0007_reportspeed"
down_revision: str | None = "0006_gdpr"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    # The minutes as the reports computed them at read time until this revision. PostgreSQL (before 18) keeps
    # generated columns STORED only; SQLite adds only VIRTUAL ones to a table, whose indexes keep the values. Either
    # way the database fills the column for existing rows and keeps it right.
    persisted = dialect == "postgresql"
    op.add_column(
        "thread",
        sa.Column("first_response_minutes", sa.Float(), sa.Computed(WAITED_MINUTES[dialect], persisted=persisted)),
    )
    op.create_index("ix_thread_opened_minutes", "thread", ["opened_at", "first_response_minutes"])
    op.create_index(
        "ix_thread_minutes_opened",
        "thread",
        ["first_response_minutes", "opened_at"],
        sqlite_where=sa.text("first_response_minutes IS NOT NULL"),
        postgresql_where=sa.text("first_response_minutes IS NOT NULL"),
    )
    op.drop_index("ix_thread_opened_at", table_name="thread")


def downgrade() -> None:
    op.create_index("ix_thread_opened_at", "thread", ["opened_at"])
    op.drop_index("ix_thread_minutes_opened", table_name="thread")
    op.drop_index("ix_thread_opened_minutes", table_name="thread")
    op.drop_column("thread", "first_response_minutes")
