"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23 11:40:13.140430
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import inbox.store.models

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "connectorhealth",
        sa.Column("connector", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("healthy", sa.Boolean(), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_poll_at", inbox.store.models.UTCDateTime(), nullable=True),
        sa.Column("last_ok_at", inbox.store.models.UTCDateTime(), nullable=True),
        sa.Column("last_error_at", inbox.store.models.UTCDateTime(), nullable=True),
        sa.Column("items_total", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("connector"),
    )
    op.create_table(
        "cursor",
        sa.Column("connector", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("updated_at", inbox.store.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("connector"),
    )
    op.create_table(
        "customer",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("handle", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("display_name", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("first_seen_at", inbox.store.models.UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", inbox.store.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("channel", "handle", name="uq_customer_channel_handle"),
    )
    op.create_table(
        "thread",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("connector", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("external_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("assignee", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("opened_at", inbox.store.models.UTCDateTime(), nullable=False),
        sa.Column("last_customer_at", inbox.store.models.UTCDateTime(), nullable=False),
        sa.Column("cycle", sa.Integer(), nullable=False),
        sa.Column("clock_kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("clock_start", inbox.store.models.UTCDateTime(), nullable=False),
        sa.Column("warn_at", inbox.store.models.UTCDateTime(), nullable=False),
        sa.Column("due_at", inbox.store.models.UTCDateTime(), nullable=False),
        sa.Column("sla_stage", sa.Integer(), nullable=False),
        sa.Column("responded_at", inbox.store.models.UTCDateTime(), nullable=True),
        sa.Column("first_response_at", inbox.store.models.UTCDateTime(), nullable=True),
        sa.Column("resolved_at", inbox.store.models.UTCDateTime(), nullable=True),
        sa.Column("updated_at", inbox.store.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("connector", "external_id", name="uq_thread_connector_external"),
    )
    with op.batch_alter_table("thread", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_thread_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index(
            "ix_thread_sla_open",
            ["warn_at"],
            unique=False,
            sqlite_where=sa.text("sla_stage < 2"),
            postgresql_where=sa.text("sla_stage < 2"),
        )

    op.create_table(
        "item",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("connector", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("external_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("thread_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("author_handle", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("author_name", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("text", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("url", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("rating", sa.Integer(), nullable=True),
        sa.Column("posted_at", inbox.store.models.UTCDateTime(), nullable=False),
        sa.Column("ingested_at", inbox.store.models.UTCDateTime(), nullable=False),
        sa.Column("language", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("sentiment", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("intent", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("suggestion", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("suggestion_template", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("suggestion_truncated", sa.Boolean(), nullable=False),
        sa.Column("reply_to", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
        ),
        sa.ForeignKeyConstraint(
            ["thread_id"],
            ["thread.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("connector", "external_id", name="uq_item_connector_external"),
    )
    with op.batch_alter_table("item", schema=None) as batch_op:
        batch_op.create_index("ix_item_customer_posted", ["customer_id", "posted_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_item_thread_id"), ["thread_id"], unique=False)

    op.create_table(
        "event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("thread_id", sa.Integer(), nullable=True),
        sa.Column("item_id", sa.Integer(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", inbox.store.models.UTCDateTime(), nullable=False),
        sa.Column("done_at", inbox.store.models.UTCDateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", inbox.store.models.UTCDateTime(), nullable=True),
        sa.Column("last_error", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["item.id"],
        ),
        sa.ForeignKeyConstraint(
            ["thread_id"],
            ["thread.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.create_index(
            "ix_event_pending",
            ["id"],
            unique=False,
            sqlite_where=sa.text("done_at IS NULL"),
            postgresql_where=sa.text("done_at IS NULL"),
        )

    op.create_table(
        "reply",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("thread_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("cycle", sa.Integer(), nullable=False),
        sa.Column("text", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("agent", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("external_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("url", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("error", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("created_at", inbox.store.models.UTCDateTime(), nullable=False),
        sa.Column("sent_at", inbox.store.models.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["item.id"],
        ),
        sa.ForeignKeyConstraint(
            ["thread_id"],
            ["thread.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("thread_id", "cycle", name="uq_reply_thread_cycle"),
    )


def downgrade() -> None:
    op.drop_table("reply")
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_event_pending", sqlite_where=sa.text("done_at IS NULL"), postgresql_where=sa.text("done_at IS NULL")
        )

    op.drop_table("event")
    with op.batch_alter_table("item", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_item_thread_id"))
        batch_op.drop_index("ix_item_customer_posted")

    op.drop_table("item")
    with op.batch_alter_table("thread", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_thread_sla_open", sqlite_where=sa.text("sla_stage < 2"), postgresql_where=sa.text("sla_stage < 2")
        )
        batch_op.drop_index(batch_op.f("ix_thread_customer_id"))

    op.drop_table("thread")
    op.drop_table("customer")
    op.drop_table("cursor")
    op.drop_table("connectorhealth")
