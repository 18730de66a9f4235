"""Probes: can the store be reached, read and written just now?"""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from inbox.store.db import store_wait

# The table the write probe touches: any would do; no row of `worker` has an empty id.
_PROBE = sa.table("worker", sa.column("id"), sa.column("seen_at"))


async def probe(engine: AsyncEngine, timeout: float = 1.0) -> None:
    """Raise unless the store can be read and written within about `timeout` seconds.

    The write changes nothing (an UPDATE that matches no row, rolled back) but needs what a real write
    needs: SQLite's write lock, and on PostgreSQL a connection, a writable primary and the table's lock.
    """
    async with asyncio.timeout(timeout * 3):  # a connection that hangs (a host gone silent) counts as down too
        with store_wait(timeout):
            async with engine.connect() as conn:
                if conn.dialect.name == "postgresql":
                    ms = max(1, int(timeout * 1000))
                    await conn.exec_driver_sql(f"SET LOCAL lock_timeout = {ms}")
                    await conn.exec_driver_sql(f"SET LOCAL statement_timeout = {2 * ms}")
                await conn.execute(sa.update(_PROBE).where(_PROBE.c.id == "").values(seen_at=_PROBE.c.seen_at))
                await conn.rollback()


async def ping(engine: AsyncEngine) -> None:
    """Raise unless the store answers a query (reads and writes nothing)."""
    async with engine.connect() as conn:
        await conn.execute(sa.text("SELECT 1"))


def read_sqlite_file(path: Path) -> None:
    """Raise sqlite3.Error unless the SQLite file at `path` can be read as a database; creates and writes nothing."""
    # Read-only: `inbox check` must not create the store, nor write to it (SQLite may still open its WAL index).
    with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)) as conn:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
