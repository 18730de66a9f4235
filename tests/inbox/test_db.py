"""The store: migrations match the models, URLs map to the async drivers, the sweep uses its index."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

from inbox.db import async_url, migrate


async def test_migrations_match_the_models(engine):
    await migrate(engine)  # a second run is a no-op

    def diff(conn: sa.Connection) -> list:
        return compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)

    async with engine.connect() as conn:
        assert await conn.run_sync(diff) == []


def test_user_urls_map_to_async_drivers():
    assert async_url("sqlite:///inbox.db") == "sqlite+aiosqlite:///inbox.db"
    assert async_url("postgresql://u:p@h:5432/db") == "postgresql+asyncpg://u:p@h:5432/db"
    assert async_url("postgres://h/db") == "postgresql+asyncpg://h/db"
    assert async_url("postgresql+asyncpg://h/db") == "postgresql+asyncpg://h/db"


async def test_the_sla_sweep_reads_the_partial_index(engine):
    async with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            plan = await conn.execute(sa.text(
                "EXPLAIN QUERY PLAN SELECT id FROM thread WHERE sla_stage < 2 AND warn_at <= '2026-01-01'"))
            text = " ".join(str(row[-1]) for row in plan)
        else:
            await conn.execute(sa.text("SET enable_seqscan = off"))
            plan = await conn.execute(sa.text(
                "EXPLAIN SELECT id FROM thread WHERE sla_stage < 2 AND warn_at <= '2026-01-01'"))
            text = " ".join(row[0] for row in plan)
    assert "ix_thread_sla_open" in text
