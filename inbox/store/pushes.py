"""Pushed bodies: stored as received (many per transaction) before their 2xx, claimed by one worker to ingest, deleted."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from inbox.store.models import Pushed


async def add(engine: AsyncEngine, rows: Sequence[tuple[str, str]], now: datetime) -> None:
    """Store (connector, body) pairs received at `now`, in one transaction."""
    async with engine.begin() as conn:
        await conn.execute(
            sa.insert(Pushed), [{"connector": name, "body": body, "received_at": now} for name, body in rows]
        )


async def claim(
    engine: AsyncEngine, connectors: Sequence[str], worker: str, now: datetime, until: datetime, limit: int
) -> list[Any]:
    """Claim up to `limit` unclaimed (or abandoned) bodies of these connectors, oldest first (`SKIP LOCKED`):
    rows of (id, connector, body)."""
    free = (
        sa.select(Pushed.id)
        .where(
            Pushed.connector.in_(list(connectors)),
            sa.or_(Pushed.claimed_until.is_(None), Pushed.claimed_until < now),
        )
        .order_by(Pushed.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    async with engine.begin() as conn:
        claimed = await conn.execute(
            sa.update(Pushed)
            .where(Pushed.id.in_(free.scalar_subquery()))
            .values(claimed_by=worker, claimed_until=until)
            .returning(Pushed.id, Pushed.connector, Pushed.body)
        )
        return sorted(claimed.all(), key=lambda row: row.id)


async def done(engine: AsyncEngine, ids: Sequence[int]) -> None:
    """Delete bodies whose items and reports are stored."""
    if ids:
        async with engine.begin() as conn:
            await conn.execute(sa.delete(Pushed).where(Pushed.id.in_(list(ids))))


async def waiting(engine: AsyncEngine) -> int:
    """How many bodies wait to be ingested."""
    async with engine.connect() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(Pushed))).scalar_one())
